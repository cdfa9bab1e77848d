"""Quality of the quickstart pretraining vs the same model at random initialisation, on the demo data.

Pretrains ``specs/quickstart.yaml`` (a scaled-down VATT, CPU) with ``vattfw run`` and evaluates
the model before and after with the evaluator plugins:
* zero-shot text->video retrieval (R@1/5/10, median rank) over ``synth/eval``: narrated clips whose
  (shape, colour, motion) combinations never occur in pretraining (chance R@K = K / pool);
* audio linear probe accuracy on ``instruments`` (real freepats recordings, 18 classes, every other
  pitch held out) with ``lrc`` and ``svm``;
* audio linear probe accuracy on ``pitches`` (freepats notes of 60 instruments, the 18 above and 42
  more: 6 pitch classes, the pitches the pretraining clips tie to colour, at 3 loudness levels; 20
  instruments held out): what the synthetic pretraining can teach, where ``instruments`` (timbre)
  asks for what it cannot.  A demo folder with the earlier 18-instrument probe gets the new one;
* video linear probe accuracy on the 8 motion classes (``synth/train`` -> ``synth/eval``) with ``lrc``;
* a log-mel + linear baseline on the same audio probe: the feature is the clip's mean 64-band log-mel
  spectrum (42 ms windows, 21 ms hop) of exactly the waveform the model gets (the loader's rate and
  window), probed with the same ``lrc`` and ``svm``.  Learned audio features should beat it.
Both linear probes use 4 test clips per sample.  ``lrc`` runs with ``standardize: true`` here: the
features of a randomly initialised network vary by ~0.1 % across inputs, which the paper's raw LRC
cannot use at all (chance), so the comparison would only measure feature scale.

The demo data (``vattfw data demo``) is built once into ``$VATTFW_QUALITY_DIR/demo-data`` (default
``bench/quality``), or taken from ``runs/demo-data`` when the quickstart already built it.  The
spec actually run is written to ``<dir>/quality-<size>.yaml``; the ``command`` param reproduces the
numbers.  ``run("toy")`` pretrains a few steps only: a smoke test of the pipeline, not a quality figure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "specs" / "quickstart.yaml"
SIZES = {"paper": {"steps": None, "lrc_steps": 5000}, "toy": {"steps": 4, "lrc_steps": 200}}
NO_EVAL = ["--set", "eval.evaluators=[]"]


def demo_data(root: Path) -> tuple[Path, dict]:
    """The demo data set's folder and its summary (demo.json), built when missing."""
    from vattfw.data.demo import add_pitches, build_demo, pitches_current
    for folder in (Path(os.environ.get("VATTFW_DEMO_DATA", root / "demo-data")), Path("runs/demo-data")):
        if (folder / "demo.json").is_file():
            summary = json.loads((folder / "demo.json").read_text())
            if not pitches_current(summary):  # built before this pitch probe (or any) existed
                summary = add_pitches(folder)
            return folder.resolve(), summary
    folder = root / "demo-data"
    build_demo(str(folder), bbb_clips=20, progress=False)  # bbb is not used here
    return folder.resolve(), json.loads((folder / "demo.json").read_text())


def caption_vocabulary(folder: Path, root: Path) -> str:
    """The demo's GloVe word list, or (without the `demo` extra) the caption words."""
    if (folder / "vocab.txt").is_file():
        return str(folder / "vocab.txt")
    from vattfw.data.demo import COLOURS, MOTIONS, SHAPES
    words = sorted({"a", *COLOURS, *SHAPES, *(w for m in MOTIONS for w in m.split())})
    path = root / "caption-vocab.txt"
    path.write_text("\n".join(words) + "\n")
    return str(path)


def spec_dict(root: Path, folder: Path, summary: dict, size: str) -> dict:
    cfg = SIZES[size]
    spec = yaml.safe_load(QUICKSTART.read_text())
    urls = {name: str(folder / sub["urls"]) for name, sub in summary["subsets"].items()}
    src = lambda name, *req: [{"name": "webdataset", "urls": [urls[name]], "require": list(req) or ["video"]}]
    steps = cfg["steps"] or spec["train"]["steps"]
    lrc = {"name": "lrc", "steps": cfg["lrc_steps"], "standardize": True}
    audio = {"name": "linear_probe", "modality": "audio", "clips": 4, "batch_size": 32,
             "train": src("instruments/train", "audio"), "test": src("instruments/eval", "audio")}
    pitch = {**audio, "train": src("pitches/train", "audio"), "test": src("pitches/eval", "audio")}
    tag = lambda clf, what="audio": {"tag": f"linear_probe/{what}_{clf}"}  # named: the baseline runs these alone
    spec["run"].update({"name": f"quality-{size}", "output_dir": str(root / "runs"), "demo_data": None})
    spec["data"]["sources"] = [{**s, "urls": [urls["synth/train"]]} for s in spec["data"]["sources"]]
    spec["data"]["text"]["vocabulary"] = caption_vocabulary(folder, root)
    spec["train"]["steps"] = steps
    spec["checkpoint"] = {**spec.get("checkpoint", {}), "every_steps": steps, "resume": "never"}
    spec["tracking"] = {"trackers": []}  # the suite itself is the mlflow run
    spec["eval"] = {"evaluators": [
        {"name": "zero_shot_retrieval", "data": src("synth/eval", "video", "text"), "clips": 4, "batch_size": 16},
        {**audio, **tag("lrc"), "classifier": lrc},
        {**audio, **tag("svm"), "classifier": {"name": "svm", "C": 0.1}},
        {**pitch, **tag("lrc", "pitch"), "classifier": lrc},
        {**pitch, **tag("svm", "pitch"), "classifier": {"name": "svm", "C": 0.1}},
        {"name": "linear_probe", "modality": "video", "classifier": lrc, "clips": 4, "batch_size": 16,
         "train": src("synth/train"), "test": src("synth/eval")},
    ]}
    return spec


def evaluate(spec, state=None) -> dict[str, float]:
    import torch
    from vattfw.engine.weights import load_weights
    from vattfw.engine.evaluate import run_evaluators
    from vattfw.model import build_model
    torch.manual_seed(spec.run.seed)
    model = build_model(spec.model)
    if state is not None:
        load_weights(model, state, where="of the pretraining")
    return run_evaluators(model, spec)


AUDIO_PROBES = ["linear_probe/audio_lrc", "linear_probe/audio_svm", "linear_probe/pitch_lrc", "linear_probe/pitch_svm"]


def logmel_baseline(spec) -> dict[str, float]:
    """The audio probes on a model whose ``audio_pooled`` is the mean log-mel spectrum of the clip."""
    import torch
    from vattfw.engine.evaluate import run_evaluators
    from vattfw_plugins.tokenizers._spectrogram import LogMel

    class MeanLogMel(torch.nn.Module):
        def __init__(self, rate: int):
            super().__init__()
            self.mel = LogMel(rate, int(round(rate * 0.042)), int(round(rate * 0.021)), 64)

        def forward(self, batch: dict) -> dict:
            return {"audio_pooled": self.mel(batch["audio"]).mean(1)} if "audio" in batch else {}

    return run_evaluators(MeanLogMel(spec.data.audio.sample_rate), spec, only=AUDIO_PROBES)


def chance(summary: dict) -> dict[str, float]:
    pool = summary["subsets"]["synth/eval"]["samples"]
    classes = len(summary["subsets"]["instruments/train"].get("classes") or []) or 18
    out = {f"zero_shot_retrieval/R{k}": min(1.0, k / pool) for k in (1, 5, 10)}
    out["zero_shot_retrieval/MedianR"] = (pool + 1) / 2
    pitches = len(summary["subsets"]["pitches/train"].get("classes") or []) or 6
    out.update({"linear_probe/audio_lrc/top1": 1 / classes, "linear_probe/audio_svm/top1": 1 / classes,
                "linear_probe/pitch_lrc/top1": 1 / pitches, "linear_probe/pitch_svm/top1": 1 / pitches,
                "linear_probe/video_lrc/top1": 1 / 8})
    return out


def run(size: str = "paper") -> dict:
    import vattfw
    from vattfw.engine.weights import read_checkpoint
    root = Path(os.environ.get("VATTFW_QUALITY_DIR", "bench/quality")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    folder, summary = demo_data(root)
    data_s = time.perf_counter() - t0
    spec_path = root / f"quality-{size}.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict(root, folder, summary, size), sort_keys=False))
    t0 = time.perf_counter()
    env = {**os.environ, "PJRT_DEVICE": "CPU", "TF_CPP_MIN_LOG_LEVEL": "2"}
    exe = str(Path(sys.executable).parent / "vattfw")
    # The engine would also run the spec's evaluators at the end of training; they run below instead.
    proc = subprocess.run([exe, "run", str(spec_path), *NO_EVAL], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"quality: `vattfw run {spec_path}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    pretrain_s = time.perf_counter() - t0
    spec = vattfw.load_spec(spec_path)
    state, step, where = read_checkpoint(Path(spec.run.output_dir) / spec.run.name / "checkpoints")
    t0 = time.perf_counter()
    random_init, trained = evaluate(spec), evaluate(spec, state)
    baseline = logmel_baseline(spec)
    eval_s = time.perf_counter() - t0
    metrics: dict[str, float] = {}
    for name, value in trained.items():
        metrics[f"pretrained/{name}"] = value
        metrics[f"random_init/{name}"] = random_init[name]
    metrics.update({f"logmel_baseline/{k}": v for k, v in baseline.items()})
    metrics.update({f"chance/{k}": v for k, v in chance(summary).items()})
    metrics.update({"data_s": data_s, "pretrain_s": pretrain_s, "eval_s": eval_s, "pretrain_steps": float(step or 0)})
    params = {"size": size, "spec": str(spec_path), "demo_data": str(folder),
              "command": f"vattfw run {spec_path} {' '.join(NO_EVAL)} && "
                         f"vattfw eval {spec_path} --checkpoint {where} --no-track",
              "suite_command": f"vattfw bench quality --size {size}"}
    params["readme_table"] = table(metrics)
    return {"params": params, "metrics": metrics}


def table(metrics: dict[str, float]) -> str:
    """The README table: pretrained vs random initialisation vs the log-mel baseline vs chance."""
    rows = ["| metric | pretrained | random init | log-mel + linear | chance |", "|---|---|---|---|---|"]
    for key in sorted(k[len("pretrained/"):] for k in metrics if k.startswith("pretrained/")):
        if key.endswith(("/queries", "/pool", "/top5")) or "/cosine/" in key:
            continue
        c, b = metrics.get(f"chance/{key}"), metrics.get(f"logmel_baseline/{key}")
        rows.append(f"| {key} | {metrics[f'pretrained/{key}']:.3f} | {metrics[f'random_init/{key}']:.3f} | "
                    f"{'' if b is None else f'{b:.3f}'} | {'' if c is None else f'{c:.3f}'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    result = run(sys.argv[1] if len(sys.argv) > 1 else "toy")
    print(result["params"].pop("readme_table"))
    print(json.dumps(result, indent=1))
