"""Spatial and colour transforms of a whole clip (the same parameters on every frame).

Random parameters are drawn from a numpy Generator by the caller's ``draw_*`` call and
applied by plain torch ops, so a sample's output is a function of its RNG seed only.
Colour jitter follows TensorFlow's ``random_brightness`` / ``random_saturation`` /
``random_contrast`` / ``random_hue`` (the order used by MMV [1], which A.2.1 cites).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CropParams:
    top: int
    left: int
    height: int
    width: int
    flip: bool


@dataclass(frozen=True)
class ColourParams:
    apply: bool
    brightness: float
    saturation: float
    contrast: float
    hue: float


def draw_crop(rng: np.random.Generator, height: int, width: int, area: tuple[float, float],
              aspect: tuple[float, float], flip_p: float, attempts: int = 100) -> CropParams:
    """Inception-style crop as TF's sample_distorted_bounding_box draws it: aspect ratio
    (w/h) uniform in ``aspect``, relative area uniform in ``area``; after ``attempts``
    misses, the whole frame."""
    total = height * width
    box = (0, 0, height, width)
    for _ in range(attempts):
        ratio = rng.uniform(*aspect)
        target = rng.uniform(*area) * total
        h = int(round(math.sqrt(target / ratio)))
        w = int(round(math.sqrt(target * ratio)))
        if 0 < h <= height and 0 < w <= width:
            box = (int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
            break
    flip = bool(rng.random() < flip_p)
    return CropParams(*box, flip)


def draw_colour(rng: np.random.Generator, prob: float, brightness: float, saturation: float,
                contrast: float, hue: float) -> ColourParams:
    apply = bool(rng.random() < prob)
    return ColourParams(apply, float(rng.uniform(-brightness, brightness)),
                        float(rng.uniform(1 - saturation, 1 + saturation)),
                        float(rng.uniform(1 - contrast, 1 + contrast)), float(rng.uniform(-hue, hue)))


def to_float(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T,H,W,3] -> float32 [T,3,H,W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def crop_resize(frames: np.ndarray, crop: CropParams, size: int) -> torch.Tensor:
    """Crop the uint8 frames, resize to size x size, flip: float [T,3,size,size] in [0, 1]."""
    part = frames[:, crop.top:crop.top + crop.height, crop.left:crop.left + crop.width]
    x = resize(to_float(part), size, size)
    return x.flip(-1) if crop.flip else x


def rotate_hue(x: torch.Tensor, shift: float) -> torch.Tensor:
    """HSV hue plus ``shift`` (turns) with saturation and value kept, computed in RGB: a hue
    change keeps each pixel's max v and min, so each channel is v - (v - min) f_c(h'), the
    HSV->RGB step with v s = v - min.  One pass instead of the RGB->HSV->RGB round trip (half
    the ops: on clip-sized frames augmentation time is per-op overhead)."""
    r, g, b = x.unbind(-3)
    v, top = x.max(dim=-3)
    delta = v - x.min(dim=-3)[0]
    d = delta.clamp_min(1e-12)  # delta 0 (grey): any hue, the output is v
    h = torch.where(top == 0, ((g - b) / d) % 6, torch.where(top == 1, (b - r) / d + 2, (r - g) / d + 4))
    h6 = (h + shift * 6) % 6
    k = torch.stack(((5 + h6) % 6, (3 + h6) % 6, (1 + h6) % 6), dim=-3)
    f = torch.minimum(k, 4 - k).clamp_(0, 1)
    return v.unsqueeze(-3) - delta.unsqueeze(-3) * f


def adjust_saturation(x: torch.Tensor, factor: float) -> torch.Tensor:
    """HSV saturation times ``factor`` (clipped to [0, 1]) with hue and value kept, computed in
    RGB: with v = max and s = (v - min) / v, each channel is v - (v - c) s' / s."""
    v, _ = x.max(dim=-3, keepdim=True)
    lo, _ = x.min(dim=-3, keepdim=True)
    s = (v - lo) / v.clamp_min(1e-12)
    ratio = torch.where(s > 0, (s * factor).clamp(0, 1) / s.clamp_min(1e-12), torch.zeros_like(s))
    return v - (v - x) * ratio


def colour_jitter(x: torch.Tensor, p: ColourParams) -> torch.Tensor:
    """x float [T,3,H,W] in [0, 1]; brightness, saturation, contrast, hue, then clip to [0, 1]."""
    if p.apply:
        x = adjust_saturation((x + p.brightness).clamp_(0, 1), p.saturation)
        mean = x.mean(dim=(-2, -1), keepdim=True)
        x = ((x - mean) * p.contrast + mean).clamp_(0, 1)
        x = rotate_hue(x, p.hue)
    return x.clamp(0, 1)


def to_model(x: torch.Tensor) -> torch.Tensor:
    """float [T,3,H,W] in [0, 1] -> [T,H,W,3] in [-1, 1] (the batch layout)."""
    return (x * 2 - 1).permute(0, 2, 3, 1).contiguous()


def eval_crops(frames: np.ndarray, size: int, crops: int) -> list[torch.Tensor]:
    """Resize the shorter side to ``size`` and take 1 (centre) or 3 (start/centre/end along the
    longer side) size x size crops: float [T,3,size,size] each, in [0, 1]."""
    t, h, w, _ = frames.shape
    scale = size / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    x = resize(to_float(frames), nh, nw)
    spare_h, spare_w = nh - size, nw - size
    if crops == 1:
        offsets = [(spare_h // 2, spare_w // 2)]
    elif spare_w >= spare_h:
        offsets = [(spare_h // 2, 0), (spare_h // 2, spare_w // 2), (spare_h // 2, spare_w)]
    else:
        offsets = [(0, spare_w // 2), (spare_h // 2, spare_w // 2), (spare_h, spare_w // 2)]
    return [x[:, :, y:y + size, z:z + size] for y, z in offsets]


def fit_length(wave: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Exactly ``n`` samples: loop the waveform ('loop') or pad with silence; clip to [-1, 1]."""
    if wave.numel() == 0:
        return torch.zeros(n)
    if wave.numel() < n:
        if mode == "loop":
            wave = wave.repeat(math.ceil(n / wave.numel()))
        else:
            wave = F.pad(wave, (0, n - wave.numel()))
    return wave[:n].clamp(-1, 1)
