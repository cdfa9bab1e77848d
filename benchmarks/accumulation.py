"""Gradient accumulation: step time and peak memory of k=4 feature-cached accumulation vs one
pass over the whole batch (k=1) vs k=4 independent micro-batches (the pre-cache behaviour).

Each arm is its own process (:func:`vattfw.engine.measure.compare`: the engine's compiled XLA
step on a fixed batch, uploaded once), pinned to the same cores with the same thread count
(printed and logged).  After warm-up (three untimed steps: the compiles) the arms run
interleaved rounds of steps, rotating which goes first, so they see the same machine; each
step is timed to its loss on the host.  Metrics per arm: median step seconds and its spread ((p90 - p10) /
median), peak RSS of the process (on the CPU the XLA device memory is host memory) and XLA's
own peak-memory estimate when the runtime gives one; the first step's loss (k1 and k4_cached
differ only by their dropout draws, k4_independent by its smaller negatives); ratios: cached/k1 and
cached/independent for time and memory.  Sizes: "toy" (the engine tests' 1-layer model,
batch 16: seconds) and "paper" (Small backbones x3 at the quickstart's CPU inputs, batch 32).
A figure measured while other jobs ran is not a result.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

SPLITS = {"k1": (1, "cached"), "k4_cached": (4, "cached"), "k4_independent": (4, "independent")}
SIZES = {"toy": {"batch": 16, "rounds": 5, "per_round": 2},
         "paper": {"batch": 32, "rounds": 5, "per_round": 2}}  # >= 10 timed steps per arm
WARMUP = 2  # after the first step (its loss is reported): the second compile, then one warm step


def run(size: str = "paper") -> dict:
    from vattfw.engine import measure
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    cfg = SIZES[size]
    results = measure.compare("accumulation", list(ARMS), size, cfg["rounds"], cfg["per_round"], WARMUP)
    metrics: dict[str, float] = {}
    for name, res in results.items():
        metrics[f"{name}_step_s"] = res.median_s
        metrics[f"{name}_spread"] = res.spread
        metrics[f"{name}_peak_rss_mb"] = res.end["peak_rss_mb"]
        if res.end.get("xla_peak_mb"):
            metrics[f"{name}_xla_peak_mb"] = res.end["xla_peak_mb"]
        metrics[f"{name}_first_loss"] = res.info["first_loss"]
    for other in ("k1", "k4_independent"):
        metrics[f"cached_over_{other}_time"] = metrics["k4_cached_step_s"] / metrics[f"{other}_step_s"]
        metrics[f"cached_over_{other}_rss"] = metrics["k4_cached_peak_rss_mb"] / metrics[f"{other}_peak_rss_mb"]
    info = results["k1"].info
    return {"params": {"size": size, "batch": str(cfg["batch"]), "cores": info["cores"], "threads": info["threads"],
                       "timed_steps_per_arm": str(cfg["rounds"] * cfg["per_round"]), "arms": str(list(ARMS))},
            "metrics": metrics}


# -- one arm (its own process) ---------------------------------------------------------
_KEEP: list = []  # the arm's run folder lives as long as its process


def _arm(name: str, size: str):
    import resource
    from vattfw.engine.measure import Arm
    from vattfw.engine.trainer import Trainer
    os.environ.setdefault("CPU_NUM_DEVICES", "1")
    sys.path.insert(0, str(Path(__file__).parent))
    import train_throughput as tt  # the same model configurations
    k, mode = SPLITS[name]
    tmp = Path(tempfile.mkdtemp(prefix="vattfw-bench-"))
    _KEEP.append(tmp)
    spec = _arm_spec(name, k, mode, size, tmp, tt)
    whole = tt.batch(spec)
    micro = [{key: v.chunk(k)[i] for key, v in whole.items()} for i in range(k)]
    trainer = Trainer(spec, loader=micro, resume="never", trackers=False, progress=False, checkpoints=False,
                      evaluate=False)
    trainer.setup()
    be = trainer.backend
    batches = [{key: be.to_device(v) for key, v in trainer.tracked.lifted(b).items()} for b in micro]
    step = be.compile(trainer._train_step)
    for g in trainer.optimizer.param_groups:
        g["lr"] = 1e-4

    def one() -> float:
        return float(step(batches)[0].cpu())  # waits for the step: timing needs it

    def end() -> dict:
        mem = be.memory_per_device()  # on the CPU the XLA device memory is host memory: RSS holds it
        return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "xla_peak_mb": mem / 2 ** 20 if mem else None}
    return Arm(one, spec.train.global_batch_size, {"first_loss": one(), "k": k, "accumulation": mode}, end)


def _arm_spec(name: str, k: int, mode: str, size: str, tmp: Path, tt):
    import yaml
    import vattfw
    base = dict(tt.TOY if size == "toy" else tt.CPU)
    base["train"] = {"global_batch_size": SIZES[size]["batch"], "grad_accumulation": k, "accumulation": mode}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base))
    # The model's defaults (dropout, DropToken on): the cached arm pays for replaying their draws.
    return vattfw.load_spec(path, [f"run.output_dir={tmp}", f"run.name={name}", "train.steps=1000",
                                   "checkpoint.every_steps=1000000", "mesh.data=1", "schedule.warmup_steps=1",
                                   "tracking.trackers=[]"])


ARMS = {name: (lambda size, name=name: _arm(name, size)) for name in SPLITS}
