"""``spectrogram`` tokenizer (audio, paper Table 10): log-mel spectrogram cut into patches.

Waveform ``[B, S]`` -> torchaudio MelSpectrogram (80 bins, 42 ms window, 21 ms hop, power 2,
log(x + 1e-6)) -> ``[B, frames, 80]`` -> non-overlapping ``patch`` = (time, frequency) patches
(Conv2d, kernel = stride; trailing frames that do not fill a patch are dropped) -> learned
(time, frequency) positional tables, LayerNorm, dropout, DropToken.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

import vattfw

from ._position import DropToken, DropTokenConfig, GridPositions, PositionConfig, bad_shape, prod


class Config(vattfw.PluginConfig):
    sample_rate: int = Field(48_000, ge=1, description="Waveform sample rate in Hz.")
    samples: int = Field(153_600, ge=1, description="Configured input length; sets the positional buckets.")
    n_mels: int = Field(80, ge=1, description="Mel bins.")
    window_ms: float = Field(42.0, gt=0, description="STFT window length in milliseconds.")
    hop_ms: float = Field(21.0, gt=0, description="STFT step in milliseconds.")
    patch: tuple[int, int] = Field((16, 5), description="Patch size (time frames, mel bins).")
    position: PositionConfig = Field(default_factory=PositionConfig, description="Positional tables.")
    drop_token: DropTokenConfig = Field(default_factory=DropTokenConfig, description="DropToken (training only).")

    def hop(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    def buckets(self) -> tuple[int, int]:
        frames = self.samples // self.hop() + 1  # centred STFT
        return frames // self.patch[0], self.n_mels // self.patch[1]


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


def build(config: Config, dim: int, **_) -> SpectrogramTokenizer:
    return SpectrogramTokenizer(config, dim)
