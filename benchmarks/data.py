"""Input-pipeline throughput: clips per second per CPU core through decode + sample + augment,
for each decoder (PyAV, torchcodec), and how that compares with what training consumes.

``run("paper")``: a 10 s 640x360 25 fps h264 clip with 44.1 kHz stereo AAC (HowTo100M /
AudioSet-like), sampled as in pretraining (32 frames at 10 fps, random crop to 224x224, flip,
colour jitter; 3.2 s of audio resampled to 48 kHz).  ``run("toy")``: a 3 s 160x120 clip to
8 frames of 64x64 and 16 kHz audio (seconds).  One process, one thread: numbers are per core.

Returned metrics (per decoder D): ``D/clips_per_s_per_core``, ``D/decode_s`` (open + frames +
audio), ``D/augment_s``; ``torchcodec_over_pyav`` (> 1 = torchcodec slower); and
``paper_clips_per_s_per_accelerator`` = 2048 x 500k steps / 3 days / 256 TPUs (the paper's
training rate, A.2.4) with ``cores_per_accelerator`` = that rate / the faster decoder's rate:
host cores each accelerator needs to be fed at the paper's pace.
"""
from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

PAPER_RATE = 2048 * 500_000 / (3 * 86_400) / 256


def _clip(size: str, folder: Path) -> bytes:
    w, h, fps, dur, sr, ch = (640, 360, 25, 10, 44_100, 2) if size != "toy" else (160, 120, 10, 3, 16_000, 1)
    path = folder / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={fps}:duration={dur}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={sr}:duration={dur}", "-ac", str(ch),
                    "-c:v", "libx264", "-preset", "veryfast", "-g", str(fps * 2), "-pix_fmt", "yuv420p",
                    "-c:a", "aac", str(path)], check=True)
    return path.read_bytes()


def _settings(size: str, decoder: str) -> dict:
    if size == "toy":
        return {"decoder": decoder, "video": {"frames": 8, "fps": 4, "size": 64}, "audio": {"sample_rate": 16_000}}
    return {"decoder": decoder}  # the paper's pretraining defaults


def run(size: str = "paper") -> dict:
    import numpy as np
    import torch

    from vattfw.data import transforms as tf
    from vattfw.data.pipeline import Sampler
    from vattfw.spec.data import DataSection

    torch.set_num_threads(1)
    reps = 3 if size == "toy" else 8
    out: dict = {"params/size": size, "params/reps": reps, "params/threads": 1}
    with tempfile.TemporaryDirectory() as tmp:
        blob = _clip(size, Path(tmp))
    for decoder in ("pyav", "torchcodec"):
        data = DataSection.model_validate(_settings(size, decoder))
        sampler = Sampler(data, "train")
        sampler({"mp4": blob, "json": b"{}"}, ("video", "audio"), np.random.default_rng(0))  # warm-up
        start = time.perf_counter()
        for i in range(reps):
            sampler({"mp4": blob, "json": b"{}"}, ("video", "audio"), np.random.default_rng(i))
        per_clip = (time.perf_counter() - start) / reps
        # The split between decoding and augmenting, measured on the same windows.
        from vattfw.data.decode import open_clip
        t0 = time.perf_counter()
        for i in range(reps):
            clip = open_clip(blob, decoder)
            frames = clip.frames_at([1.0 + k / data.video.fps for k in range(data.video.frames)])
            open_clip(blob, decoder).audio(1.0, sampler.window)
        decode_s = (time.perf_counter() - t0) / reps
        rng = np.random.default_rng(0)
        a = data.augment
        t0 = time.perf_counter()
        for _ in range(reps):
            crop = tf.draw_crop(rng, frames.shape[1], frames.shape[2], a.area, a.aspect, a.flip)
            colour = tf.draw_colour(rng, 1.0, a.brightness, a.saturation, a.contrast, a.hue)
            tf.to_model(tf.colour_jitter(tf.crop_resize(frames, crop, data.video.size), colour))
        augment_s = (time.perf_counter() - t0) / reps
        out[f"{decoder}/clips_per_s_per_core"] = round(1 / per_clip, 3)
        out[f"{decoder}/decode_s"] = round(decode_s, 4)
        out[f"{decoder}/augment_s"] = round(augment_s, 4)
    out["torchcodec_over_pyav"] = round(out["pyav/clips_per_s_per_core"] / out["torchcodec/clips_per_s_per_core"], 3)
    best = max(out["pyav/clips_per_s_per_core"], out["torchcodec/clips_per_s_per_core"])
    out["paper_clips_per_s_per_accelerator"] = round(PAPER_RATE, 2)
    out["cores_per_accelerator"] = round(PAPER_RATE / best, 2)
    return out


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "toy"), indent=1))
