"""Implementation of the ``spectrogram`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import torch
from torch import nn


from .spectrogram import Config
from ._position import DropToken, GridPositions, bad_shape, prod


class SpectrogramTokenizer(nn.Module):
    provides_agg = False

    def __init__(self, cfg: Config, dim: int):
        super().__init__()
        import torchaudio
        self.cfg, self.dim = cfg, dim
        win = int(round(cfg.sample_rate * cfg.window_ms / 1000))
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate, n_fft=win, win_length=win, hop_length=cfg.hop(), n_mels=cfg.n_mels)
        self.proj = nn.Conv2d(1, dim, kernel_size=cfg.patch, stride=cfg.patch)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.pos = GridPositions(cfg.buckets(), dim, cfg.position)
        self.drop_token = DropToken(cfg.drop_token, prod(cfg.buckets()), "spectrogram")

    def forward(self, audio: torch.Tensor):
        shape = tuple(audio.shape)
        need = self.cfg.hop() * (self.cfg.patch[0] - 1)
        expected = f"[B, S] with S >= {need + 1} samples (one {self.cfg.patch[0]}-frame patch)"
        if audio.dim() != 2:
            raise bad_shape("spectrogram", expected, shape)
        if shape[1] <= need:
            raise bad_shape("spectrogram", expected, shape, "audio too short")
        spec = torch.log(self.mel(audio) + 1e-6).transpose(1, 2)   # [B, frames, mels]
        x = self.proj(spec.unsqueeze(1))                             # [B, d, ft, fm]
        grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        return self.drop_token(self.pos(x, grid)), None


