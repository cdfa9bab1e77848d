"""``waveform`` tokenizer (audio): raw waveform patches (Conv1d, kernel = stride = patch).

Input ``[B, S]`` -> ``[B, S/patch, d]`` with one learned table of ``buckets`` positions (1200 for
3.2 s at 48 kHz and patch 128), LayerNorm on the positions, dropout, DropToken.  Parameters:
``proj``, ``pos.axis0``, ``pos.norm``.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

import vattfw

from ._position import DropToken, DropTokenConfig, GridPositions, PositionConfig, bad_shape


class Config(vattfw.PluginConfig):
    patch: int = Field(128, ge=1, description="Samples per token (Table 10: 128, 256, 512, 1024).")
    samples: int = Field(153_600, ge=1, description="Configured input length (3.2 s at 48 kHz); sets the buckets.")
    buckets: int | None = Field(None, ge=1, description="Positional buckets; null = samples // patch (1200).")
    position: PositionConfig = Field(default_factory=PositionConfig, description="Positional table.")
    drop_token: DropTokenConfig = Field(default_factory=DropTokenConfig, description="DropToken (training only).")

    def n_buckets(self) -> int:
        return self.buckets or self.samples // self.patch


class WaveformTokenizer(nn.Module):
    provides_agg = False

    def __init__(self, cfg: Config, dim: int):
        super().__init__()
        self.cfg, self.dim = cfg, dim
        self.proj = nn.Conv1d(1, dim, kernel_size=cfg.patch, stride=cfg.patch)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.pos = GridPositions((cfg.n_buckets(),), dim, cfg.position)
        self.drop_token = DropToken(cfg.drop_token, cfg.n_buckets(), "waveform")

    def forward(self, audio: torch.Tensor):
        shape, p = tuple(audio.shape), self.cfg.patch
        if audio.dim() == 3 and shape[-1] == 1:
            audio = audio[..., 0]
        expected = f"[B, S] with S a multiple of {p} and at least {p} samples (configured S = {self.cfg.samples})"
        if audio.dim() != 2:
            raise bad_shape("waveform", expected, shape)
        if audio.shape[1] < p:
            raise bad_shape("waveform", expected, shape, "audio too short")
        if audio.shape[1] % p:
            raise bad_shape("waveform", expected, shape, f"length not divisible by the patch {p}")
        x = self.proj(audio.unsqueeze(1)).transpose(1, 2)   # [B, S/p, d]
        return self.drop_token(self.pos(x, (x.shape[1],))), None


def build(config: Config, dim: int, **_) -> WaveformTokenizer:
    return WaveformTokenizer(config, dim)
