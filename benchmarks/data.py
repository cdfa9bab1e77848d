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

Does the loader keep up with the quickstart?  Arms (``ARMS``, each its own process with every
core, :func:`vattfw.engine.measure.compare`, 5 interleaved rounds of 4 batches / steps):
``loader``: specs/quickstart.yaml's training loader alone (its own ``data.num_workers``),
``loader_auto``: the same with ``num_workers: auto`` (one worker per core); ``step``: the
quickstart's compiled XLA train step alone on a fixed batch of the same shapes.  A loader arm
starts its iterator (and worker processes) at each round and stops it after, untimed, so no
worker decodes during another arm's turn; the first batch of each worker is untimed.
``loader_over_step`` = loader clips/s / step clips/s (issue 18's target: >= 2, the loader
never bounds the step), ``loader_auto_over_step`` likewise, each with ``_round_min`` /
``_round_max``; ``loader_clips_per_s``, ``loader_auto_clips_per_s``, ``step_clips_per_s``.
"paper": the demo data set the quickstart reads (runs/demo-data in the checkout, built first
if missing, as `vattfw run specs/quickstart.yaml` does); "toy": 16 copies of one 2 s 64x64
clip at batch 8.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

PAPER_RATE = 2048 * 500_000 / (3 * 86_400) / 256
REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "specs" / "quickstart.yaml"
SPEC_ENV = "VATTFW_BENCH_QUICKSTART"  # the derived spec's path, from the parent to the arms' processes
PLAN = (5, 4)  # rounds x batches (steps) per round per arm


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
    out.update(loader_vs_step(size))
    return out


# -- the quickstart's loader vs its step -------------------------------------------------

def loader_vs_step(size: str) -> dict:
    from vattfw.engine import measure
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[SPEC_ENV] = str(_quickstart_spec(size, Path(tmp)))
        try:
            results = measure.compare("data", list(ARMS), size, *PLAN, warmup=1)
        finally:
            del os.environ[SPEC_ENV]
    out: dict = {"params/quickstart_num_workers": str(results["loader"].info["num_workers"]),
                 "params/auto_num_workers": str(results["loader_auto"].info["num_workers"]),
                 "params/loader_batch": str(results["loader"].items),
                 "params/arm_threads": str(results["step"].info["threads"]),
                 "params/arm_cores": str(results["step"].info["cores"])}
    for name, res in results.items():
        out[f"{name}_clips_per_s"] = res.rate
        out[f"{name}_spread"] = res.spread
    for name in ("loader", "loader_auto"):
        r = measure.ratio(results, name, "step")
        out[f"{name}_over_step"] = r["ratio"]
        out[f"{name}_over_step_round_min"] = r["round_min"]
        out[f"{name}_over_step_round_max"] = r["round_max"]
    return out


def _quickstart_spec(size: str, tmp: Path) -> Path:
    """specs/quickstart.yaml with absolute data paths (the arms run in other folders), no
    evaluation; at toy size its data replaced by a few generated clips, batch 8."""
    import yaml
    q = yaml.safe_load(QUICKSTART.read_text())
    source = q["data"]["sources"][0]
    if size == "toy":
        urls, vocab = _toy_shards(tmp)
        q["train"]["global_batch_size"] = 8
    else:
        root = REPO / q["run"]["demo_data"]
        if not (root / "demo.json").is_file():
            from vattfw.commands.run import prepare_data
            prepare_data(_load(QUICKSTART, [f"run.demo_data={root}"]))
        urls, vocab = [str(REPO / u) for u in source["urls"]], str(REPO / q["data"]["text"]["vocabulary"])
    source["urls"], q["data"]["text"]["vocabulary"] = urls, vocab
    q["run"].pop("demo_data", None)
    q.pop("eval", None)
    q["run"]["output_dir"] = str(tmp / "runs")
    path = tmp / "quickstart.yaml"
    path.write_text(yaml.safe_dump(q))
    return path


def _toy_shards(tmp: Path) -> tuple[list[str], str]:
    """16 copies of one synthetic 2 s clip (64x64 at 8 fps, 16 kHz mono: the demo's format),
    captioned, in one shard; and a vocabulary of the caption's words."""
    from vattfw.data.builder import build
    media = tmp / "media"
    media.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=8:duration=2",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=2", "-ac", "1",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(media / "clip_00.mp4")], check=True)
    caption = "a red circle moving left"
    for i in range(16):
        if i:
            (media / f"clip_{i:02d}.mp4").write_bytes((media / "clip_00.mp4").read_bytes())
        (media / f"clip_{i:02d}.txt").write_text(caption + "\n")
    index = build(str(media), str(tmp / "shards"), max_count=64, workers=1, progress=False, source="toy")
    vocab = tmp / "vocab.txt"
    vocab.write_text("\n".join(caption.split()) + "\n")
    return [str(tmp / "shards" / index["urls"])], str(vocab)


def _load(path: Path, overrides: list[str] = ()):
    import vattfw
    return vattfw.load_spec(path, list(overrides))


def _loader_arm(size: str, workers: str | None):
    """The quickstart's training loader; each round starts its iterator and its first batch per
    worker (worker start-up, the batches they decoded in parallel), untimed."""
    from vattfw.data import build_loader
    from vattfw.engine.measure import Arm
    spec = _load(Path(os.environ[SPEC_ENV]), [f"data.num_workers={workers}"] if workers else [])
    loader = build_loader(spec)
    state: dict = {}

    def start() -> None:
        state["it"] = iter(loader)
        for _ in range(max(1, loader.num_workers)):
            next(state["it"])

    def stop() -> None:
        state.pop("it").close()  # ends the worker processes: nothing decodes during another arm's turn

    return Arm(lambda: next(state["it"]), loader.batch_size, {"num_workers": loader.num_workers},
               round_start=start, round_end=stop)


def _step_arm(size: str):
    from vattfw.engine.bench import load_suite
    os.environ.setdefault("CPU_NUM_DEVICES", "1")
    spec = _load(Path(os.environ[SPEC_ENV]), ["tracking.trackers=[]", "checkpoint.every_steps=1000000"])
    return load_suite("train_throughput").trainer_arm(spec)


ARMS = {"loader": lambda size: _loader_arm(size, None),
        "loader_auto": lambda size: _loader_arm(size, "auto"),
        "step": _step_arm}


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "toy"), indent=1))
