"""The PyAV decoder's waveform against the samples written: mono = the channel mean, at the
right offset, for packed and planar sample formats (one decode path converts them all)."""
from __future__ import annotations

import subprocess
import wave

import numpy as np
import pytest

from vattfw.data.decode import open_clip

RATE = 8000


def _stereo(path) -> np.ndarray:
    """Two different int16 channels, 1 s, written with the standard library: [n, 2]."""
    t = np.arange(RATE) / RATE
    x = np.stack([np.sin(2 * np.pi * 220 * t) * 12000, np.sign(np.sin(2 * np.pi * 3 * t)) * 7000 + t * 900], 1)
    x = np.round(x).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(x.tobytes())
    return x


@pytest.mark.parametrize("codec,ext", [("copy", "wav"), ("pcm_s32le", "wav"), ("pcm_f32le", "wav"),
                                       ("pcm_u8", "wav"), ("flac", "flac"), ("pcm_s16le", "mkv")])
def test_audio_is_the_channel_mean_at_the_requested_offset(tmp_path, codec, ext):
    x = _stereo(tmp_path / "in.wav")
    out = tmp_path / f"out.{ext}"
    if codec == "copy":
        out = tmp_path / "in.wav"
    else:
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp_path / "in.wav"), "-c:a", codec, str(out)],
                       check=True)
    got, rate = open_clip(out.read_bytes()).audio(0.25, 0.5)
    want = x[2000:6000].astype(np.float64).mean(1) / 32768
    assert rate == RATE and got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1 / 128 if codec == "pcm_u8" else 1e-6)
