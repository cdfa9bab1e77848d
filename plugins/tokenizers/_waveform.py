"""Implementation of the ``waveform`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import torch
from torch import nn


from .waveform import Config
from ._position import DropToken, GridPositions, bad_shape


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


