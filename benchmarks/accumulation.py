"""Gradient accumulation: step time and peak memory of k=4 feature-cached accumulation vs one
pass over the whole batch (k=1) vs k=4 independent micro-batches (the pre-cache behaviour).

Each arm is its own process (the engine's compiled XLA step on a fixed batch, uploaded once),
pinned to the same cores with the same thread count (printed and logged).  After warm-up
(the two compiles: step 1, then step 2 with optimiser state) the arms run interleaved rounds
of steps, rotating which goes first, so they see the same machine; each step is timed to its
loss on the host.  Metrics per arm: median step seconds and its spread ((p90 - p10) /
median), peak RSS of the process (on the CPU the XLA device memory is host memory) and XLA's
own peak-memory estimate when the runtime gives one; the first step's loss (k1 and k4_cached
differ only by their dropout draws, k4_independent by its smaller negatives); ratios: cached/k1 and
cached/independent for time and memory.  Sizes: "toy" (the engine tests' 1-layer model,
batch 16: seconds) and "paper" (Small backbones x3 at the quickstart's CPU inputs, batch 32).
A figure measured while other jobs ran is not a result.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ARMS = (("k1", 1, "cached"), ("k4_cached", 4, "cached"), ("k4_independent", 4, "independent"))
SIZES = {"toy": {"batch": 16, "rounds": 5, "per_round": 2},
         "paper": {"batch": 32, "rounds": 5, "per_round": 2}}  # >= 10 timed steps per arm


def _threads() -> tuple[list[int], int]:
    cores = sorted(os.sched_getaffinity(0))
    return cores, int(os.environ.get("VATTFW_BENCH_THREADS", len(cores)))


def run(size: str = "paper") -> dict:
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    cfg = SIZES[size]
    cores, threads = _threads()
    print(f"accumulation: arms pinned to cores {cores}, {threads} threads each", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        workers = {name: _start(name, k, mode, size, Path(tmp), cores, threads) for name, k, mode in ARMS}
        try:
            times = {name: [] for name in workers}
            order = list(workers)
            for r in range(cfg["rounds"]):
                for name in order[r % len(order):] + order[:r % len(order)]:
                    times[name] += _ask(workers[name], {"steps": cfg["per_round"]})["times"]
            ends = {name: _ask(w, {"end": True}) for name, w in workers.items()}
        finally:
            for w in workers.values():
                w.stdin.close()
                w.wait(timeout=60)
    metrics: dict[str, float] = {}
    for name, ts in times.items():
        ts = sorted(ts)
        med = statistics.median(ts)
        metrics[f"{name}_step_s"] = med
        metrics[f"{name}_spread"] = (ts[int(0.9 * (len(ts) - 1))] - ts[int(0.1 * (len(ts) - 1))]) / med
        metrics[f"{name}_peak_rss_mb"] = ends[name]["peak_rss_mb"]
        if ends[name].get("xla_peak_mb"):
            metrics[f"{name}_xla_peak_mb"] = ends[name]["xla_peak_mb"]
        metrics[f"{name}_first_loss"] = ends[name]["first_loss"]
    for other in ("k1", "k4_independent"):
        metrics[f"cached_over_{other}_time"] = metrics["k4_cached_step_s"] / metrics[f"{other}_step_s"]
        metrics[f"cached_over_{other}_rss"] = metrics["k4_cached_peak_rss_mb"] / metrics[f"{other}_peak_rss_mb"]
    return {"params": {"size": size, "batch": str(cfg["batch"]), "cores": str(cores), "threads": str(threads),
                       "timed_steps_per_arm": str(cfg["rounds"] * cfg["per_round"]), "arms": str([a[0] for a in ARMS])},
            "metrics": metrics}


def _start(name: str, k: int, mode: str, size: str, tmp: Path, cores: list[int], threads: int):
    env = {**os.environ, "PJRT_DEVICE": "CPU", "TF_CPP_MIN_LOG_LEVEL": "2", "CPU_NUM_DEVICES": "1",
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    args = json.dumps({"name": name, "k": k, "mode": mode, "size": size, "tmp": str(tmp), "cores": cores,
                       "threads": threads})
    proc = subprocess.Popen([sys.executable, __file__, "--arm", args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    _read(proc)  # set up and warmed up before the next arm starts: no compile overlaps a timed step
    return proc


def _ask(proc, message: dict) -> dict:
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()
    return _read(proc)


def _read(proc) -> dict:
    for line in proc.stdout:
        if line.startswith("ARM "):
            return json.loads(line[4:])
    raise RuntimeError(f"benchmark arm exited (status {proc.wait()})")


# -- one arm (its own process) ---------------------------------------------------------
def _arm(args: dict) -> None:
    import resource
    import time
    os.sched_setaffinity(0, args["cores"])
    import torch
    torch.set_num_threads(args["threads"])
    sys.path.insert(0, str(Path(__file__).parent))
    import train_throughput as tt  # the same model configurations
    from vattfw.engine.trainer import Trainer, synthetic_batch
    spec = _arm_spec(args, tt)
    whole = _batch(spec, synthetic_batch(spec, spec.train.global_batch_size))
    micro = [{key: v.chunk(args["k"])[i] for key, v in whole.items()} for i in range(args["k"])]
    trainer = Trainer(spec, loader=micro, resume="never", trackers=False, progress=False, checkpoints=False,
                      evaluate=False)
    trainer.setup()
    be = trainer.backend
    batches = [{key: be.to_device(v) for key, v in trainer.tracked._lifted(b).items()} for b in micro]
    step = be.compile(trainer._train_step)
    for g in trainer.optimizer.param_groups:
        g["lr"] = 1e-4
    first_loss = float(step(batches)[0].cpu())
    float(step(batches)[0].cpu())  # the second compile (optimiser state), then warm
    float(step(batches)[0].cpu())
    print(f"arm {args['name']}: threads {torch.get_num_threads()}, cores {sorted(os.sched_getaffinity(0))}",
          file=sys.stderr)
    _reply({"ready": True})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("end"):
            mem = be.memory_per_device()
            _reply({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "xla_peak_mb": mem / 2 ** 20 if mem else None, "first_loss": first_loss})
            return
        times = []
        for _ in range(msg["steps"]):
            t = time.perf_counter()
            float(step(batches)[0].cpu())
            times.append(time.perf_counter() - t)
        _reply({"times": times})


def _arm_spec(args: dict, tt):
    import yaml
    import vattfw
    base = dict(tt.TOY if args["size"] == "toy" else tt.CPU)
    base["train"] = {"global_batch_size": SIZES[args["size"]]["batch"], "grad_accumulation": args["k"],
                     "accumulation": args["mode"]}
    path = Path(args["tmp"]) / f"{args['name']}.yaml"
    path.write_text(yaml.safe_dump(base))
    # The model's defaults (dropout, DropToken on): the cached arm pays for replaying their draws.
    return vattfw.load_spec(path, [f"run.output_dir={args['tmp']}", f"run.name={args['name']}", "train.steps=1000",
                                   "checkpoint.every_steps=1000000", "mesh.data=1", "schedule.warmup_steps=1",
                                   "tracking.trackers=[]"])


def _batch(spec, batch):
    import torch
    gen = torch.Generator().manual_seed(0)
    out = {k: (torch.rand(v.shape, generator=gen) * 2 - 1 if k in ("video", "audio") else v) for k, v in batch.items()}
    if "text" in out:
        vocab = spec.model.tokenizers["text"].config.vocab_size
        out["text"] = torch.randint(1, vocab, out["text"].shape, generator=gen)
    return out


def _reply(obj: dict) -> None:
    print("ARM " + json.dumps(obj), flush=True)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--arm":
    _arm(json.loads(sys.argv[2]))
