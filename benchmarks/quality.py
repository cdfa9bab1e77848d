"""Quality of a short pretraining vs the same model at random initialisation, on the demo media.

Measures, for the model before and after a short `vattfw run` (CPU):
* zero-shot text->video retrieval (R@1/5/10, median rank) over held-out narrated clips whose
  (shape, colour, motion) combinations never occur in pretraining (chance R@K = K / pool);
* audio linear probe accuracy on real instrument recordings (Debian freepats via timidity;
  18 classes, every other pitch held out) with `lrc` and `svm`;
* video linear probe accuracy on the 8 motion classes of the narrated clips (`lrc`).

Data (built once under ``$VATTFW_QUALITY_DIR`` or ``bench/quality``, byte-for-byte deterministic):
compositional clips (4 shapes x 6 colours x 8 motions, 64x64, 16 frames at 8 fps; the sound's
timbre follows the shape, its pitch the colour, its envelope the motion; caption "a red circle
moving left"), a quarter of the combinations held out; and freepats instrument notes.  The
pretraining spec is written next to the data (``quality.yaml``); the returned ``command``
reproduces the pretraining, ``vattfw eval quality.yaml --checkpoint ...`` the evaluation.

``run("toy")`` trains for a few steps only (a smoke test of the pipeline, not a quality number).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZES = {"paper": {"steps": 400, "batch": 32, "lrc_steps": 5000},
         "toy": {"steps": 4, "batch": 8, "lrc_steps": 200}}

SHAPES = ["circle", "square", "triangle", "cross"]
COLOURS = {"red": (225, 45, 40), "green": (45, 190, 70), "blue": (55, 85, 230),
           "yellow": (230, 215, 50), "white": (235, 235, 235), "purple": (155, 65, 195)}
MOTIONS = ["moving left", "moving right", "moving up", "moving down",
           "growing", "shrinking", "bouncing", "blinking"]
SIDE, FRAMES, FPS, RATE = 64, 16, 8, 16_000
INSTRUMENTS = {"piano": 0, "harpsichord": 6, "glockenspiel": 9, "organ": 19, "accordion": 21,
               "nylon_guitar": 24, "distortion_guitar": 30, "acoustic_bass": 32, "violin": 40, "cello": 42,
               "harp": 46, "trumpet": 56, "trombone": 57, "alto_sax": 65, "clarinet": 71, "flute": 73,
               "pan_flute": 75, "sitar": 104}
PITCHES = list(range(45, 81, 2))  # 18 pitches; odd positions are the test split


# -- demo media ----------------------------------------------------------------------------
def held_out(si: int, ci: int, mi: int) -> bool:
    """A quarter of the combinations; every shape, colour and motion still occurs in training."""
    return (si + ci + mi) % 4 == 0


def _shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    if shape == "triangle":
        return (dy <= 0.8 * r) & (dy + r >= 1.8 * np.abs(dx))
    bar = 0.3 * r
    return ((np.abs(dx) <= r) & (np.abs(dy) <= bar)) | ((np.abs(dy) <= r) & (np.abs(dx) <= bar))


def _position(motion: str, t: float) -> tuple[float, float, float, bool]:
    """(centre x, centre y, radius, visible) at time t in [0, 1]."""
    c = SIDE / 2
    moves = {"moving left": (50 - 36 * t, c, 10), "moving right": (14 + 36 * t, c, 10),
             "moving up": (c, 50 - 36 * t, 10), "moving down": (c, 14 + 36 * t, 10),
             "growing": (c, c, 4 + 14 * t), "shrinking": (c, c, 18 - 14 * t),
             "bouncing": (c, 48 - 30 * abs(np.sin(3 * np.pi * t)), 10), "blinking": (c, c, 10)}
    x, y, r = moves[motion]
    return x, y, r, motion != "blinking" or int(t * 8) % 2 == 0


def _sound(shape: str, ci: int, motion: str, seed: int) -> np.ndarray:
    n = RATE * FRAMES // FPS
    u = np.arange(n) / (n - 1)
    f0 = 220.0 * 2 ** (ci / 6)
    f = f0 * (2 ** u if motion == "moving up" else 2 ** (1 - u) if motion == "moving down" else np.ones(n))
    phase = 2 * np.pi * np.cumsum(f) / RATE
    wave = {"circle": np.sin(phase), "square": 0.5 * np.sign(np.sin(phase)),
            "triangle": 2 / np.pi * np.arcsin(np.sin(phase))}.get(shape)
    if wave is None:  # cross: pitched noise
        wave = 0.3 * np.random.default_rng(seed).standard_normal(n) * (0.5 + 0.5 * np.sin(phase))
    env = {"growing": 0.1 + 0.9 * u, "shrinking": 1 - 0.9 * u, "moving left": 1 - 0.5 * u,
           "moving right": 0.5 + 0.5 * u, "bouncing": np.abs(np.sin(3 * np.pi * u)) ** 0.5,
           "blinking": ((u * 8).astype(int) % 2 == 0).astype(float)}.get(motion, np.ones(n))
    return (0.4 * env * wave).astype(np.float32)


def _encode(path: Path, frames: np.ndarray, sound: np.ndarray) -> None:
    raw = path.with_suffix(".f32")
    sound.tofile(raw)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIDE}x{SIDE}",
                    "-r", str(FPS), "-i", "-", "-f", "f32le", "-ar", str(RATE), "-ac", "1", "-i", str(raw),
                    "-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "48k", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                    "-flags:a", "+bitexact", "-shortest", str(path)], input=frames.tobytes(), check=True)
    raw.unlink()


def make_narrated(out: Path) -> None:
    """192 clips in out/train and out/heldout, each with a json sidecar (captions, motion label)."""
    i = 0
    for si, shape in enumerate(SHAPES):
        for ci, (colour, rgb) in enumerate(COLOURS.items()):
            for mi, motion in enumerate(MOTIONS):
                split = out / ("heldout" if held_out(si, ci, mi) else "train")
                split.mkdir(parents=True, exist_ok=True)
                frames = np.empty((FRAMES, SIDE, SIDE, 3), np.uint8)
                for k in range(FRAMES):
                    frames[k] = 16 + (i * 7) % 40  # a dim background that varies per clip
                    x, y, r, visible = _position(motion, k / (FRAMES - 1))
                    if visible:
                        frames[k][_shape_mask(shape, x, y, r)] = rgb
                key = f"clip{i:03d}"
                _encode(split / f"{key}.mp4", frames, _sound(shape, ci, motion, i))
                meta = {"captions": [f"a {colour} {shape} {motion}"], "label": mi,
                        "shape": shape, "colour": colour, "motion": motion}
                (split / f"{key}.json").write_text(json.dumps(meta))
                i += 1


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.insert(0, (n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out)


def _note(path: Path, program: int, pitch: int, velocity: int) -> None:
    track = (_vlq(0) + bytes([0xC0, program]) + _vlq(0) + bytes([0x90, pitch, velocity]) + _vlq(480)
             + bytes([0x80, pitch, 0]) + _vlq(240) + b"\xff\x2f\x00")
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track)


def make_instruments(out: Path) -> None:
    """648 notes (18 instruments x 18 pitches x 2 velocities) rendered by timidity from freepats."""
    if not shutil.which("timidity") or not Path("/etc/timidity/freepats.cfg").exists():
        raise RuntimeError("quality benchmark: needs timidity and freepats (apt-get install timidity freepats)")
    mids = []
    for label, (name, program) in enumerate(INSTRUMENTS.items()):
        for p, pitch in enumerate(PITCHES):
            split = out / ("test" if p % 2 else "train")
            split.mkdir(parents=True, exist_ok=True)
            for velocity in (70, 110):
                stem = split / f"{name}_n{pitch}_v{velocity}"
                _note(stem.with_suffix(".mid"), program, pitch, velocity)
                stem.with_suffix(".json").write_text(json.dumps({"label": label, "instrument": name}))
                mids.append(str(stem.with_suffix(".mid")))
    subprocess.run(["timidity", "-c", "/etc/timidity/freepats.cfg", "-Ow", "-s", "16000", "--output-mono", *mids],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for m in mids:
        os.remove(m)


def build_demo(root: Path) -> dict[str, str]:
    """Media -> shards (vattfw.data.builder) once; returns split name -> shard URL pattern."""
    from vattfw.data.builder import build
    splits = {"narrated_train": ("narrated", "train"), "narrated_heldout": ("narrated", "heldout"),
              "instruments_train": ("instruments", "train"), "instruments_test": ("instruments", "test")}
    done = root / "shards" / "DONE"
    if not done.exists():
        media = root / "media"
        shutil.rmtree(media, ignore_errors=True)
        make_narrated(media / "narrated")
        make_instruments(media / "instruments")
        for name, (group, split) in splits.items():
            out = root / "shards" / name
            shutil.rmtree(out, ignore_errors=True)
            build(str(media / group / split), str(out), max_count=64, workers=2, progress=False)
        done.write_text("ok\n")
    urls = {}
    for name in splits:
        n = len(list((root / "shards" / name).glob("shard-*.tar")))
        urls[name] = str(root / "shards" / name / f"shard-{{000000..{n - 1:06d}}}.tar")
    return urls


# -- the spec --------------------------------------------------------------------------------
def vocabulary() -> list[str]:
    words = {"a", *COLOURS, *SHAPES}
    for m in MOTIONS:
        words.update(m.split())
    return sorted(words)


def spec_dict(root: Path, urls: dict[str, str], cfg: dict) -> dict:
    src = lambda name, *req: [{"name": "webdataset", "urls": [urls[name]], "require": list(req) or ["video"]}]
    backbone = {"name": "transformer", "layers": 2, "width": 64, "mlp_dim": 128, "heads": 4}
    lrc = {"name": "lrc", "steps": cfg["lrc_steps"]}
    return {
        "run": {"name": "quality", "seed": 0, "output_dir": str(root / "runs")},
        "mesh": {"data": 1},
        "data": {"sources": src("narrated_train", "video", "audio", "text"),
                 "video": {"frames": 8, "fps": 4.0, "stride": 1, "size": 32},
                 "audio": {"sample_rate": 4096},
                 "text": {"vocabulary": str(root / "vocab.txt"), "max_words": 8, "candidates": 1},
                 "eval": {"clips": 1, "crops": 1},
                 "num_workers": 0},  # loader workers cannot pickle the datasource specs yet (data helper)
        "model": {
            "tokenizers": {"video": {"name": "voxel", "patch": [2, 8, 8], "buckets": [4, 4, 4]},
                           "audio": {"name": "waveform", "patch": 64, "samples": 8192},
                           "text": {"name": "word_embedding", "vocab_size": len(vocabulary()) + 1, "dim": 32,
                                    "max_words": 8}},
            "backbones": {"video": backbone, "audio": backbone, "text": {**backbone, "agg_token": False}},
            "heads": {"fac": {"name": "fac", "d_va": 64, "d_vt": 32}}},
        "losses": {"terms": {
            "nce_va": {"loss": {"name": "nce"}, "x": "video_va", "y": "audio_va", "mask": "audio_mask"},
            "mil_nce_vt": {"loss": {"name": "mil_nce"}, "x": "video_vt", "y": "text_vt", "mask": "text_mask"}}},
        "optimizer": {"name": "adam", "lr": 1.0e-3},
        "schedule": {"name": "warmup_cosine", "warmup_steps": max(1, cfg["steps"] // 10), "end_lr": 1.0e-5,
                     "period": "half"},
        "train": {"global_batch_size": cfg["batch"], "steps": cfg["steps"], "log_every": 20},
        "checkpoint": {"every_steps": cfg["steps"], "resume": "never"},
        "tracking": {"trackers": []},
        "eval": {"evaluators": [
            {"name": "zero_shot_retrieval", "data": src("narrated_heldout"), "clips": 4, "batch_size": 16},
            {"name": "linear_probe", "modality": "audio", "classifier": lrc, "clips": 4, "batch_size": 32,
             "train": src("instruments_train", "audio"), "test": src("instruments_test", "audio")},
            {"name": "linear_probe", "modality": "audio", "classifier": {"name": "svm", "C": 0.1}, "clips": 4,
             "batch_size": 32, "train": src("instruments_train", "audio"),
             "test": src("instruments_test", "audio")},
            {"name": "linear_probe", "modality": "video", "classifier": lrc, "clips": 4, "batch_size": 16,
             "train": src("narrated_train"), "test": src("narrated_heldout")},
        ]},
    }


# -- the measurement ------------------------------------------------------------------------------
def evaluate(spec, state=None) -> dict[str, float]:
    import torch
    from vattfw.eval.checkpoint import load_weights
    from vattfw.eval.runner import run_evaluators
    from vattfw.model import build_model
    torch.manual_seed(spec.run.seed)  # the pretraining's initialisation
    model = build_model(spec.model)
    if state is not None:
        load_weights(model, state, where="the pretrained checkpoint")
    return run_evaluators(model, spec)


def chance(urls_root: Path) -> dict[str, float]:
    pool = sum(1 for si in range(4) for ci in range(6) for mi in range(8) if held_out(si, ci, mi))
    return {"zero_shot_retrieval/R1": 1 / pool, "zero_shot_retrieval/R5": 5 / pool,
            "zero_shot_retrieval/R10": 10 / pool, "zero_shot_retrieval/MedianR": (pool + 1) / 2,
            "linear_probe/audio_lrc/top1": 1 / len(INSTRUMENTS), "linear_probe/audio_svm/top1": 1 / len(INSTRUMENTS),
            "linear_probe/video_lrc/top1": 1 / len(MOTIONS)}


def run(size: str = "paper") -> dict:
    import yaml
    import vattfw
    from vattfw.eval.checkpoint import read_checkpoint
    cfg = SIZES[size]
    root = Path(os.environ.get("VATTFW_QUALITY_DIR", "bench/quality")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    urls = build_demo(root)
    (root / "vocab.txt").write_text("\n".join(vocabulary()) + "\n")
    data_s = time.perf_counter() - t0
    spec_path = root / f"quality-{size}.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict(root, urls, cfg), sort_keys=False))
    command = f"vattfw run {spec_path}"
    t0 = time.perf_counter()
    env = {**os.environ, "PJRT_DEVICE": "CPU", "TF_CPP_MIN_LOG_LEVEL": "2"}
    vattfw_exe = str(Path(sys.executable).parent / "vattfw")
    proc = subprocess.run([vattfw_exe, "run", str(spec_path)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"quality benchmark: `{command}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    pretrain_s = time.perf_counter() - t0
    spec = vattfw.load_spec(spec_path)
    state, step, where = read_checkpoint(root / "runs" / "quality" / "checkpoints")
    t0 = time.perf_counter()
    random_init, trained = evaluate(spec), evaluate(spec, state)
    eval_s = time.perf_counter() - t0
    metrics: dict[str, float] = {}
    for name, value in trained.items():
        metrics[f"pretrained/{name}"] = value
        metrics[f"random_init/{name}"] = random_init[name]
    for name, value in chance(root).items():
        metrics[f"chance/{name}"] = value
    metrics.update({"data_build_s": data_s, "pretrain_s": pretrain_s, "eval_s": eval_s})
    params = {"size": size, "pretrain_steps": step, "global_batch_size": cfg["batch"], "lrc_steps": cfg["lrc_steps"],
              "spec": str(spec_path), "command": f"{command} && vattfw eval {spec_path} --checkpoint {where}"}
    return {"params": params, "metrics": metrics, "table": table(metrics)}


def table(metrics: dict[str, float]) -> str:
    """The README table: pretrained vs random initialisation vs chance."""
    rows = ["| metric | pretrained | random init | chance |", "|---|---|---|---|"]
    for key in sorted(k[len("pretrained/"):] for k in metrics if k.startswith("pretrained/")):
        if key.endswith(("/queries", "/pool", "/top5")) or "/cosine/" in key:
            continue
        c = metrics.get(f"chance/{key}")
        rows.append(f"| {key} | {metrics[f'pretrained/{key}']:.3f} | {metrics[f'random_init/{key}']:.3f} | "
                    f"{'' if c is None else f'{c:.3f}'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    result = run(sys.argv[1] if len(sys.argv) > 1 else "toy")
    print(result.pop("table"))
    print(json.dumps(result, indent=1))
