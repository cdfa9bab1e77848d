"""Implementation of the ``waveform`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import torch
from torch import nn

from ._configs import DropTokenConfig, PositionConfig
from ._position import DropToken, GridPositions, bad_shape, warn_length_once


class WaveformTokenizer(nn.Module):
    provides_agg = False

    def __init__(self, dim: int, patch: int, samples: int, buckets: int, position: PositionConfig,
                 drop_token: DropTokenConfig, normalize: str = "none", proj_init: str = "xavier",
                 proj_gain: float = 1.0, token_norm: bool = False):
        super().__init__()
        self.dim, self.patch, self.samples, self.buckets = dim, patch, samples, buckets
        self.normalize = normalize
        self.proj = nn.Conv1d(1, dim, kernel_size=patch, stride=patch)
        if proj_init == "fan_in":
            nn.init.kaiming_uniform_(self.proj.weight, nonlinearity="linear")  # variance 1 / patch
        else:
            nn.init.xavier_uniform_(self.proj.weight)
        with torch.no_grad():
            self.proj.weight.mul_(proj_gain)
        nn.init.zeros_(self.proj.bias)
        self.token_norm = nn.LayerNorm(dim) if token_norm else nn.Identity()  # (Identity: no state when off)
        self.pos = GridPositions((buckets,), dim, position)
        self.drop_token = DropToken(drop_token, buckets, "waveform")

    def forward(self, audio: torch.Tensor):
        shape, p = tuple(audio.shape), self.patch
        if audio.dim() == 3 and shape[-1] == 1:
            audio = audio[..., 0]
        expected = f"[B, S] with S a multiple of {p} and at least {p} samples (configured S = {self.samples})"
        if audio.dim() != 2:
            raise bad_shape("waveform", expected, shape)
        if audio.shape[1] < p:
            raise bad_shape("waveform", expected, shape, "audio too short")
        if audio.shape[1] % p:
            raise bad_shape("waveform", expected, shape, f"length not divisible by the patch {p}")
        warn_length_once("waveform", audio.shape[1], audio.shape[1] // p, self.samples, self.buckets,
                         "The input length is data.audio.sample_rate x the clip window (video frames x stride / "
                         "fps); set the tokenizer's samples to it, or the data to the model's rate and length.")
        x = self.token_norm(self.proj(self.scale(audio).unsqueeze(1)).transpose(1, 2))   # [B, S/p, d]
        return self.drop_token(self.pos(x, (x.shape[1],))), None

    def scale(self, audio: torch.Tensor) -> torch.Tensor:
        """Per-clip peak or RMS normalisation (a silent clip stays zero: the floor only avoids 0/0)."""
        if self.normalize == "peak":
            return audio / audio.abs().amax(1, keepdim=True).clamp(min=1e-4)
        if self.normalize == "rms":
            return audio * torch.rsqrt(audio.pow(2).mean(1, keepdim=True).clamp(min=1e-8))
        return audio


