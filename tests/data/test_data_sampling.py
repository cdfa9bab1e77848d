"""Sampling and augmentation against independent plain formulas."""
from __future__ import annotations

import colorsys
import subprocess

import numpy as np
import pytest
import torch

from vattfw.data import make_loader, transforms as tf
from vattfw.data.loader import Source
from vattfw.data.text import Tokenizer

DUR, FPS, SR = 4.0, 10, 8000


@pytest.fixture(scope="module")
def ramp_shards(tmp_path_factory):
    """A 4 s clip: frame k is grey level 5k (lossless h264); a separate flac whose sample at
    time t is 0.9 t / 4 -- so any window's start time can be read from either modality."""
    from vattfw.data.builder import build
    root = tmp_path_factory.mktemp("ramp")
    src = root / "media"
    src.mkdir()
    frames = np.repeat(np.arange(40, dtype=np.uint8)[:, None, None, None] * 5, 48 * 64 * 3).reshape(40, 48, 64, 3)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48", "-r",
                    str(FPS), "-i", "-", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p",
                    str(src / "ramp.mp4")], input=frames.tobytes(), check=True)
    audio = (0.9 * np.arange(int(DUR * SR)) / SR / DUR * 32767).astype("<i2")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", str(SR), "-ac", "1", "-i", "-",
                    str(src / "ramp.flac")], input=audio.tobytes(), check=True)
    (src / "ramp.txt").write_text("The Red, square!\n")
    build(str(src), str(root / "shards"), progress=False, workers=1)
    return root / "shards" / "shard-000000.tar"


def _settings(**kw):
    base = {"video": {"frames": 8, "fps": 5, "size": 32}, "audio": {"sample_rate": SR}, "num_workers": 0,
            "text": {"vocabulary": None}, "eval": {"clips": 3, "crops": 1}, "augment": {"enabled": False}}
    base.update(kw)
    return base


def _frame_times(video):  # [T,H,W,3] in [-1,1] -> seconds from the grey level
    grey = ((video.mean(dim=(1, 2, 3)) + 1) / 2 * 255).numpy()
    return np.round(grey / 5) / FPS  # levels are 5 apart: round off coding noise


def test_eval_views_cover_the_video_evenly_and_audio_is_in_sync(ramp_shards):
    loader = make_loader([Source((str(ramp_shards),), require=("video", "audio"))], _settings(),
                         batch_size=1, split="eval")
    batch = next(iter(loader))
    assert batch["video"].shape == (3, 8, 32, 32, 3) and batch["valid"].tolist() == [1, 1, 1]
    window = 8 / 5
    for view, t0 in enumerate([0.0, (DUR - window) / 2, DUR - window]):
        np.testing.assert_allclose(_frame_times(batch["video"][view]), t0 + np.arange(8) / 5, atol=0.051)
        expected = 0.9 * (t0 + np.arange(int(window * SR)) / SR) / DUR
        np.testing.assert_allclose(batch["audio"][view].numpy(), expected, atol=2e-3)


def test_training_window_is_random_but_frames_and_audio_agree(ramp_shards):
    loader = make_loader([Source((str(ramp_shards),))], _settings(), batch_size=4, seed=3)
    batch = next(iter(loader))
    starts = set()
    for video, audio in zip(batch["video"], batch["audio"]):
        t0 = float(audio[0]) * DUR / 0.9
        starts.add(round(t0, 2))
        # The frame shown at t is the last one with timestamp <= t.
        np.testing.assert_allclose(_frame_times(video), np.floor((t0 + np.arange(8) / 5) * FPS + 1e-6) / FPS,
                                   atol=1e-3)
    assert len(starts) > 1


def test_short_clips_loop_in_sync(ramp_shards):
    loader = make_loader([Source((str(ramp_shards),))], _settings(video={"frames": 10, "fps": 2, "size": 32}),
                         batch_size=1, split="eval")
    batch = next(iter(loader))  # a 5 s window over a 4 s clip: starts at 0 and wraps at 4 s
    times = _frame_times(batch["video"][0])
    np.testing.assert_allclose(times, [0, .5, 1, 1.5, 2, 2.5, 3, 3.5, 0, .5], atol=0.051)
    audio = batch["audio"][0].numpy()
    assert audio.shape == (5 * SR,)
    np.testing.assert_allclose(audio[4 * SR:4 * SR + 100], audio[:100], atol=1e-6)


def test_three_crops_and_text(ramp_shards):
    loader = make_loader([Source((str(ramp_shards),))], _settings(eval={"clips": 1, "crops": 3}),
                         batch_size=2, split="eval")
    batch = next(iter(loader))
    assert batch["video"].shape[0] == 6 and batch["valid"].tolist() == [1, 1, 1, 0, 0, 0]
    assert batch["sample"].tolist() == [0, 0, 0, -1, -1, -1]
    tok = Tokenizer(None, max_words=16)
    ids = batch["text"][0, 0]
    assert ids[:5].tolist() == [tok.vocab[w] for w in ["the", "red", ",", "square", "!"]]
    assert (ids[5:] == 0).all() and batch["text_mask"][0] == 1


def test_crop_draws_respect_area_and_aspect():
    rng = np.random.default_rng(0)
    for _ in range(500):
        c = tf.draw_crop(rng, 120, 160, (0.08, 1.0), (0.5, 2.0), 0.5)
        assert 0 <= c.top and c.top + c.height <= 120 and 0 <= c.left and c.left + c.width <= 160
        if (c.height, c.width) != (120, 160):
            area = c.height * c.width / (120 * 160)
            assert 0.07 <= area <= 1.01 and 0.45 <= c.width / c.height <= 2.2


@pytest.mark.parametrize("p", [tf.ColourParams(True, 0.1, 1.3, 0.7, 0.15),
                               tf.ColourParams(True, -0.05, 0.8, 1.2, -0.4)])
def test_colour_jitter_matches_a_plain_per_pixel_formula(p):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (2, 3, 4, 5)).astype(np.float32)
    x[0, :, 0, 0] = 0.5                   # grey: no hue
    x[0, :, 0, 1] = (0.7, 0.7, 0.2)       # ties for the max (red wins, as in colorsys)
    x[1, :, 1, 1] = (0.3, 0.9, 0.9)
    x[1, :, 2, 2] = 0.0                   # black
    x = torch.from_numpy(x)
    got = tf.colour_jitter(x, p).numpy()

    def clip(v):
        return min(max(v, 0.0), 1.0)
    img = x.numpy().astype(np.float64) + p.brightness
    out = np.empty_like(img)
    for t in range(2):
        sat = np.empty_like(img[t])
        for i in range(4):
            for j in range(5):
                h, s, v = colorsys.rgb_to_hsv(*(clip(c) for c in img[t, :, i, j]))
                sat[:, i, j] = colorsys.hsv_to_rgb(h, clip(s * p.saturation), v)
        mean = sat.mean(axis=(1, 2), keepdims=True)
        con = (sat - mean) * p.contrast + mean
        for i in range(4):
            for j in range(5):
                h, s, v = colorsys.rgb_to_hsv(*(clip(c) for c in con[:, i, j]))
                out[t, :, i, j] = [clip(c) for c in colorsys.hsv_to_rgb((h + p.hue) % 1.0, s, v)]
    np.testing.assert_allclose(got, out, atol=1e-5)


def test_flip_and_output_range():
    frames = np.random.default_rng(2).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    crop = tf.CropParams(2, 3, 16, 16, flip=True)
    x = tf.crop_resize(frames, crop, 16)
    np.testing.assert_allclose(x.numpy(), frames[:, 2:18, 3:19, :].transpose(0, 3, 1, 2)[..., ::-1] / 255.0,
                               atol=1e-6)
    out = tf.to_model(x)
    assert out.shape == (3, 16, 16, 3) and out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("centre,gain,q", [(440.0, 9.0, 0.7), (1500.0, -12.0, 2.0)])
def test_equaliser_matches_torchaudio_and_the_cookbook_gain(centre, gain, q):
    import torchaudio.functional as AF
    t = torch.arange(SR * 2, dtype=torch.float64) / SR
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal(t.numel())) * 0.05
    got = tf.equalize(noise, SR, tf.EqParams(((centre, gain),), q))
    # torchaudio's own peaking biquad (clamped; the signal stays far inside [-1, 1]).
    torch.testing.assert_close(got, AF.equalizer_biquad(noise, SR, centre, gain, q), atol=1e-9, rtol=1e-6)
    sine = 0.1 * torch.sin(2 * torch.pi * centre * t)
    out = tf.equalize(sine, SR, tf.EqParams(((centre, gain),), q))[SR:]  # past the transient
    assert float(out.pow(2).mean().sqrt() / sine[SR:].pow(2).mean().sqrt()) == pytest.approx(10 ** (gain / 20), rel=1e-3)


def test_equaliser_keeps_the_pitch_and_draws_inside_the_band():
    rng = np.random.default_rng(1)
    assert tf.draw_eq(rng, 0.0, 3, 12.0, 0.7, SR) is None
    state = rng.bit_generator.state
    tf.draw_eq(rng, 0.0, 3, 12.0, 0.7, SR)
    assert rng.bit_generator.state == state  # prob 0 draws nothing: the paper's RNG stream
    t = torch.arange(SR, dtype=torch.float64) / SR
    tone = sum(torch.sin(2 * torch.pi * 220 * k * t) / k for k in range(1, 6))
    for _ in range(20):
        p = tf.draw_eq(rng, 1.0, 3, 12.0, 0.7, SR)
        assert len(p.bands) == 3 and all(50 <= f <= 0.45 * SR and abs(g) <= 12 for f, g in p.bands)
        spectrum = torch.fft.rfft(tf.equalize(tone, SR, p)[SR // 4:]).abs()
        peaks = set((torch.topk(spectrum, 5).indices.double() * SR / (SR * 3 // 4)).round().tolist())
        assert peaks <= {220.0 * k for k in range(1, 6)}  # harmonics move in level, never in frequency


def test_audio_equaliser_touches_training_audio_only(ramp_shards):
    def batch(split, prob):
        aug = {"enabled": True, "audio_eq_prob": prob}
        loader = make_loader([Source((str(ramp_shards),))], _settings(augment=aug), batch_size=2, seed=5,
                             split=split)
        return next(iter(loader))
    plain, eq = batch("train", 0.0), batch("train", 1.0)
    torch.testing.assert_close(plain["video"], eq["video"])  # same crops and colours: drawn before the filter
    t0 = plain["audio"][:, :1] * DUR / 0.9
    ramp = 0.9 * (t0 + torch.arange(plain["audio"].shape[1]) / SR) / DUR
    torch.testing.assert_close(plain["audio"], ramp.float(), atol=2e-3, rtol=0)  # prob 0: the raw window
    assert (eq["audio"] - plain["audio"]).abs().max() > 0.01
    torch.testing.assert_close(batch("eval", 1.0)["audio"], batch("eval", 0.0)["audio"])
