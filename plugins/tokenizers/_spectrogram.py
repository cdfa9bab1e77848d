"""Implementation of the ``spectrogram`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ._configs import DropTokenConfig, PositionConfig
from ._position import DropToken, GridPositions, bad_shape, prod, warn_length_once

# Checkpoints written before the STFT became a matmul hold torchaudio's (persistent) window and
# filterbank; both are now recomputed at build time, so loading such a checkpoint drops them.
_LEGACY_BUFFERS = ("mel.spectrogram.window", "mel.mel_scale.fb")


class LogMel(nn.Module):
    """log(mel(|STFT|^2) + 1e-6) from fixed-shape tensor ops that torch_xla lowers.

    Same numbers as ``torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=win, win_length=win,
    hop_length=hop, n_mels)`` with its defaults (periodic Hann window, centred frames with reflect
    padding, power 2, HTK mel scale from 0 Hz to sample_rate // 2, no filter normalisation), but
    without ``torch.stft``: torch_xla has no lowering for it, so inside the compiled train step it
    would run on the host and break the single-graph step.  Here the reflect-padded frames are one
    gather (indices from iota arithmetic, so the shapes are fixed), the windowed real DFT is one
    matmul with a ``[n_fft, 2 * n_freq]`` basis (cos | sin columns), power is re^2 + im^2, and the
    mel filterbank is a second matmul.  Both matrices are non-persistent float32 buffers computed
    in float64 at build time.  The front end always runs in float32 (autocast off): bf16 would
    lose about three digits of the log-mel energies.
    """

    def __init__(self, sample_rate: int, n_fft: int, hop: int, n_mels: int):
        super().__init__()
        import torchaudio
        self.n_fft, self.hop, self.pad = n_fft, hop, n_fft // 2
        n_freq = n_fft // 2 + 1
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        angle = 2 * math.pi * torch.outer(torch.arange(n_fft, dtype=torch.float64),
                                          torch.arange(n_freq, dtype=torch.float64)) / n_fft
        basis = torch.cat([torch.cos(angle), torch.sin(angle)], dim=1) * window[:, None]
        fbank = torchaudio.functional.melscale_fbanks(
            n_freq, 0.0, float(sample_rate // 2), n_mels, sample_rate, norm=None, mel_scale="htk")
        self.register_buffer("basis", basis.float(), persistent=False)   # [n_fft, 2 n_freq]
        self.register_buffer("fbank", fbank.float(), persistent=False)   # [n_freq, n_mels]

    def frames(self, samples: int) -> int:
        return 1 + (samples + 2 * self.pad - self.n_fft) // self.hop

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, S]`` waveform -> ``[B, frames, n_mels]`` log-mel energies (float32)."""
        if audio.device.type == "meta":  # shapes only (the engine's FLOP count): autocast has no meta mode
            return self._logmel(audio.float())
        with torch.autocast(audio.device.type, enabled=False):
            return self._logmel(audio.float())

    def _logmel(self, audio: torch.Tensor) -> torch.Tensor:
        s = audio.shape[1]
        dev = audio.device
        # index of padded sample (t * hop + j) in the unpadded waveform, mirrored at both ends
        idx = (torch.arange(self.frames(s), device=dev)[:, None] * self.hop
               + torch.arange(self.n_fft, device=dev)[None, :] - self.pad).abs()
        idx = torch.where(idx > s - 1, 2 * (s - 1) - idx, idx)
        spec = audio[:, idx] @ self.basis                                  # [B, frames, 2 n_freq]
        re, im = spec.chunk(2, dim=-1)
        return torch.log((re * re + im * im) @ self.fbank + 1e-6)


class SpectrogramTokenizer(nn.Module):
    provides_agg = False

    def __init__(self, dim: int, sample_rate: int, window_ms: float, hop: int, n_mels: int, patch: tuple[int, int],
                 buckets: tuple[int, int], position: PositionConfig, drop_token: DropTokenConfig,
                 samples: int | None = None):
        super().__init__()
        self.dim, self.hop, self.patch = dim, hop, tuple(patch)
        self.samples, self.sample_rate, self.buckets = samples, sample_rate, tuple(buckets)
        win = int(round(sample_rate * window_ms / 1000))
        self.mel = LogMel(sample_rate, win, hop, n_mels)
        self.proj = nn.Conv2d(1, dim, kernel_size=patch, stride=patch)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.pos = GridPositions(buckets, dim, position)
        self.drop_token = DropToken(drop_token, prod(buckets), "spectrogram")
        self._register_load_state_dict_pre_hook(_drop_legacy_buffers)

    def forward(self, audio: torch.Tensor):
        shape = tuple(audio.shape)
        # reflect padding mirrors n_fft // 2 samples, so the clip must be longer than that
        need = max(self.hop * (self.patch[0] - 1), self.mel.pad)
        expected = f"[B, S] with S >= {need + 1} samples (one {self.patch[0]}-frame patch)"
        if audio.dim() != 2:
            raise bad_shape("spectrogram", expected, shape)
        if shape[1] <= need:
            raise bad_shape("spectrogram", expected, shape, "audio too short")
        spec = self.mel(audio)                                       # [B, frames, mels]
        x = self.proj(spec.unsqueeze(1).to(self.proj.weight.dtype))  # [B, d, ft, fm]
        grid = tuple(x.shape[2:])
        if self.samples is not None and grid != self.buckets:
            warn_length_once("spectrogram", shape[1], prod(grid), self.samples, prod(self.buckets),
                             f"The tokenizer computes its mel frames for sample_rate {self.sample_rate} Hz; the "
                             f"input length is data.audio.sample_rate x the clip window: make both match the model.")
        x = x.flatten(2).transpose(1, 2)
        return self.drop_token(self.pos(x, grid)), None


def _drop_legacy_buffers(state_dict, prefix, *_):
    for name in _LEGACY_BUFFERS:
        state_dict.pop(prefix + name, None)
