"""Spatial and colour transforms of a whole clip (the same parameters on every frame), and the
audio equaliser.

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
import torchaudio.functional as AF


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


@dataclass(frozen=True)
class EqParams:
    bands: tuple[tuple[float, float], ...]  # (centre Hz, gain dB) per peaking filter
    q: float


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


def draw_eq(rng: np.random.Generator, prob: float, bands: int, max_db: float, q: float,
            rate: int) -> EqParams | None:
    """None when the clip is left alone; prob 0 draws nothing (the paper's RNG stream)."""
    if prob <= 0 or rng.random() >= prob:
        return None
    lo, hi = math.log(50.0), math.log(0.45 * rate)
    return EqParams(tuple((float(math.exp(rng.uniform(lo, hi))), float(rng.uniform(-max_db, max_db)))
                          for _ in range(bands)), q)


def equalize(wave: torch.Tensor, rate: int, p: EqParams | None) -> torch.Tensor:
    """Peaking filters in series (the Audio EQ Cookbook's biquad: gain ``g`` dB at the centre, 0 dB
    far from it).  Unclamped: loudness is the tokenizer's business, not this filter's."""
    if p is None:
        return wave
    x = wave.double()
    for centre, gain in p.bands:
        amp, w0 = 10 ** (gain / 40), 2 * math.pi * centre / rate
        alpha = math.sin(w0) / (2 * p.q)
        b = [1 + alpha * amp, -2 * math.cos(w0), 1 - alpha * amp]
        a = [1 + alpha / amp, -2 * math.cos(w0), 1 - alpha / amp]
        x = AF.lfilter(x, torch.tensor(a, dtype=x.dtype), torch.tensor(b, dtype=x.dtype), clamp=False)
    return x.to(wave.dtype)


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


_HUE_OFFSETS = torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1)  # HSV->RGB: k_c = (n_c + 6h) mod 6

# On clip-sized frames augmentation time is per-op overhead, and some ops cost 5-15x others
# (measured on 8x3x32x32, one thread: max/min with indices 175 us vs amax/amin 12 us; float
# remainder 50-125 us vs a compare + where ~25 us), so these use the cheap ones.


def rotate_hue(x: torch.Tensor, shift: float) -> torch.Tensor:
    """HSV hue plus ``shift`` (turns) with saturation and value kept, computed in RGB: a hue
    change keeps each pixel's max v and min, so each channel is v - (v - min) f_c(h'), the
    HSV->RGB step with v s = v - min (one pass instead of an RGB->HSV->RGB round trip)."""
    r, g, b = x.unbind(-3)
    v, lo = x.amax(dim=-3), x.amin(dim=-3)
    delta = v - lo
    # 6h = (g-b)/delta if red is the max, 2 + (b-r)/delta if green, 4 + (r-g)/delta (colorsys's order)
    rise = torch.where(r == v, g - b, torch.where(g == v, b - r + 2 * delta, r - g + 4 * delta))
    h6 = rise / delta.clamp_min(1e-12) + 6 * shift  # in [-7, 11); grey: any h, f times delta = 0
    h6 = h6 - 6 * torch.floor(h6 / 6)
    k = h6.unsqueeze(-3) + _HUE_OFFSETS
    k = torch.where(k >= 6, k - 6, k)
    return v.unsqueeze(-3) - delta.unsqueeze(-3) * torch.minimum(k, 4 - k).clamp_(0, 1)


def adjust_saturation(x: torch.Tensor, factor: float) -> torch.Tensor:
    """HSV saturation times ``factor`` (clipped to [0, 1]) with hue and value kept, computed in
    RGB: with v = max, the new v - min is min((v - min) factor, v) and each channel moves
    towards v in proportion (v - c scales with v - min at a fixed hue)."""
    v = x.amax(dim=-3, keepdim=True)
    delta = v - x.amin(dim=-3, keepdim=True)
    ratio = torch.minimum(delta * factor, v) / delta.clamp_min(1e-12)  # grey: v - x = 0 anyway
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
