"""``spectrogram`` tokenizer (audio, paper Table 10): log-mel spectrogram cut into patches.

Waveform ``[B, S]`` -> log-mel (80 bins, 42 ms periodic-Hann window, 21 ms hop, centred frames
with reflect padding, power 2, HTK mel filters 0 .. sample_rate/2 unnormalised, log(x + 1e-6);
the numbers of torchaudio's ``MelSpectrogram`` with those settings) -> ``[B, frames, 80]`` ->
non-overlapping ``patch`` = (time, frequency) patches (Conv2d, kernel = stride; trailing frames
that do not fill a patch are dropped) -> learned (time, frequency) positional tables, LayerNorm,
dropout, DropToken.  The STFT is a frame gather plus a matmul with a windowed real-DFT basis,
not ``torch.stft``, which torch_xla cannot lower (the compiled train step would fall back to the
host); it runs in float32 even under bf16 autocast.
"""
from __future__ import annotations

from pydantic import Field

import vattfw

from ._configs import DropTokenConfig, PositionConfig


class Config(vattfw.PluginConfig):
    sample_rate: int = Field(48_000, ge=1, description="Waveform sample rate in Hz.")
    samples: int = Field(153_600, ge=1, description="Configured input length; sets the positional buckets.")
    n_mels: int = Field(80, ge=1, description="Mel bins.")
    window_ms: float = Field(42.0, gt=0, description="STFT window length in milliseconds.")
    hop_ms: float = Field(21.0, gt=0, description="STFT step in milliseconds.")
    patch: tuple[int, int] = Field((16, 5), description="Patch size (time frames, mel bins).")
    position: PositionConfig = Field(default_factory=PositionConfig, description="Positional tables.")
    drop_token: DropTokenConfig = Field(default_factory=DropTokenConfig, description="DropToken (training only).")

    def hop(self) -> object:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    def buckets(self) -> tuple[int, int]:
        frames = self.samples // self.hop() + 1  # centred STFT
        return frames // self.patch[0], self.n_mels // self.patch[1]


def build(config: Config, dim: int, **_) -> object:
    from ._spectrogram import SpectrogramTokenizer
    return SpectrogramTokenizer(dim, config.sample_rate, config.window_ms, config.hop(), config.n_mels, config.patch,
                                config.buckets(), config.position, config.drop_token, config.samples)
