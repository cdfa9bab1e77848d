"""Training throughput: the same VATT model, batch and Adam in four ways, each in its own process.

Arms (``ARMS``; :func:`vattfw.engine.measure.compare` runs them):
``eager``: the best plain PyTorch step: the model (its attention is one
``F.scaled_dot_product_attention`` call, so torch picks its fused kernel), fused
Adam (``fused=True``; foreach where this torch has no fused CPU kernel); ``eager_compile``: the
same with the forward and loss under ``torch.compile``; ``torch``: vattfw's own step on
``run.backend: torch`` (one process, the Trainer's ``_train_step``: grad norm, health counters);
``xla``: vattfw's compiled XLA step (the Trainer's, on one PJRT CPU device unless
``CPU_NUM_DEVICES`` says otherwise).  Every arm has the same threads (all cores this process
may use, or ``VATTFW_BENCH_THREADS``), pinned; after set-up and three untimed steps (compiles)
the arms take turns in interleaved rounds (5 rounds x 2 steps at cpu/paper size), so a change
of machine load hits every arm alike.

Sizes: "toy" (the engine tests' 1-layer model: minutes, for smoke tests), "cpu" (Small
backbones, 6 x 512, 8 frames at 112 px, batch 8) and "paper" (specs/pretrain.yaml's
Base-Base-Small model and inputs at batch 2).
Metrics per arm A: ``A_clips_per_s`` (median step), ``A_step_s``, ``A_spread`` ((p90 - p10) /
median of its timed steps), ``A_mfu`` (FLOPs of one step, counted on the eager model, x steps/s
over :func:`vattfw.engine.peak.host_peak_flops`, the machine's cached all-core fp32 peak),
``A_compile_s`` (its first two steps minus two median steps: compiling and first-use costs).
Ratios (> 1 = faster than eager): ``xla_over_eager``, ``torch_over_eager``,
``compile_over_eager`` from the medians, with ``_round_median`` / ``_round_min`` /
``_round_max`` over the per-round ratios.  Params: threads, cores, inter-op threads, model,
batch.  A figure measured while other jobs ran is not a result.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

TOY = {
    "model": {
        "tokenizers": {"video": {"name": "voxel", "patch": [2, 8, 8], "buckets": [2, 2, 2]},
                       "audio": {"name": "waveform", "patch": 64, "samples": 1024},
                       "text": {"name": "word_embedding", "vocab_size": 100, "dim": 16, "max_words": 4}},
        "backbones": {m: {"name": n, "layers": 1, "width": 32, "mlp_dim": 64, "heads": 4}
                      for m, n in (("video", "transformer"), ("audio", "transformer"), ("text", "t5"))},
        "heads": {"fac": {"name": "fac", "d_va": 16, "d_vt": 8}}},
    "data": {"video": {"frames": 4, "size": 16, "fps": 10}, "audio": {"sample_rate": 2560},
             "text": {"max_words": 4, "candidates": 2}},
    "train": {"global_batch_size": 8},
}
CPU = {
    "model": {
        "tokenizers": {"video": {"name": "voxel", "patch": [2, 16, 16], "buckets": [4, 7, 7]},
                       "audio": {"name": "waveform", "patch": 128, "samples": 25600},
                       "text": {"name": "word_embedding", "vocab_size": 65536, "dim": 300, "max_words": 16}},
        "backbones": {"video": {"name": "transformer", "size": "small"},
                      "audio": {"name": "transformer", "size": "small"},
                      "text": {"name": "t5", "size": "small"}},
        "heads": {"fac": {"name": "fac", "d_va": 512, "d_vt": 256}}},
    "data": {"video": {"frames": 8, "size": 112, "fps": 10}, "audio": {"sample_rate": 32000},
             "text": {"max_words": 16, "candidates": 5}},
    "train": {"global_batch_size": 8},
}
PLAN = {"toy": (5, 2), "cpu": (5, 2), "paper": (5, 2)}  # rounds x timed steps per round (>= 10 per arm)
FIRST = 2  # steps each arm times itself at set-up (the compiles happen here)
WARMUP = 1  # then untimed steps before the rounds


def run(size: str = "paper") -> dict:
    from vattfw.engine import measure
    from vattfw.engine.peak import host_peak_flops
    if size not in PLAN:
        raise ValueError(f"size must be one of {', '.join(PLAN)}, got {size!r}")
    rounds, steps = PLAN[size]
    peak = host_peak_flops()  # before any arm starts: it is measured once per machine, on all cores
    results = measure.compare("train_throughput", list(ARMS), size, rounds, steps, WARMUP)
    return report(results, size, peak, rounds, steps)


def report(results: dict, size: str, peak: float, rounds: int, steps: int) -> dict:
    from vattfw.engine import measure
    eager = results["eager"].info
    flops, batch = float(eager["flops"]), results["eager"].items
    metrics = {"parameters": eager["parameters"], "flops_per_step": flops, "peak_gflops": peak / 1e9,
               "batch": batch}
    params = {"model": {"toy": "tiny 1-layer", "cpu": "small x3"}.get(size, "BBS (pretrain.yaml)"),
              "rounds": rounds, "steps_per_round": steps, "timed_steps_per_arm": rounds * steps,
              "untimed_steps": FIRST + WARMUP}
    for name, res in results.items():
        metrics[f"{name}_clips_per_s"] = res.rate
        metrics[f"{name}_step_s"] = res.median_s
        metrics[f"{name}_spread"] = res.spread
        metrics[f"{name}_mfu"] = flops / res.median_s / peak
        metrics[f"{name}_compile_s"] = max(0.0, sum(res.info["first_steps_s"]) - FIRST * res.median_s)
        metrics[f"{name}_setup_s"] = res.info["setup_s"]
        for key in ("threads", "interop_threads", "cores", "optimizer", "attention", "devices"):
            if key in res.info:
                params[f"{name}_{key}"] = res.info[key]
    for num, label in (("xla", "xla_over_eager"), ("torch", "torch_over_eager"), ("eager_compile", "compile_over_eager")):
        r = measure.ratio(results, num, "eager")
        metrics[label] = r["ratio"]
        for key in ("round_median", "round_min", "round_max"):
            metrics[f"{label}_{key}"] = r[key]
    return {"params": params, "metrics": metrics}


# -- arms (each runs in its own worker process) ---------------------------------------

_KEEP: list = []  # the arm's temporary run folder lives as long as its process


def _spec(size: str, overrides: list[str] = ()):
    import yaml
    import vattfw
    out = Path(tempfile.mkdtemp(prefix="vattfw-bench-"))
    _KEEP.append(out)
    if size == "paper":
        path = Path(__file__).resolve().parents[1] / "specs" / "pretrain.yaml"
        base = ["train.global_batch_size=2"]
    else:
        path = out / "bench.yaml"
        path.write_text(yaml.safe_dump(TOY if size == "toy" else CPU))
        base = []
    return vattfw.load_spec(path, base + [f"run.output_dir={out}", "run.name=bench", "train.steps=1000",
                                          "train.log_every=1", "checkpoint.every_steps=1000000", "mesh.data=-1",
                                          "schedule.warmup_steps=1", "tracking.trackers=[]", *overrides])


def batch(spec, size: int | None = None) -> dict:
    """A fixed batch of random inputs (zeros would let a kernel skip work), the same in every arm."""
    import torch
    from vattfw.engine.trainer import synthetic_batch
    out = synthetic_batch(spec, size or spec.train.global_batch_size)
    gen = torch.Generator().manual_seed(0)
    out = {k: (torch.rand(v.shape, generator=gen) * 2 - 1 if k in ("video", "audio") else v) for k, v in out.items()}
    if "text" in out:
        vocab = spec.model.tokenizers["text"].config.vocab_size
        out["text"] = torch.randint(1, vocab, out["text"].shape, generator=gen)
    return out


def _first_steps(step) -> list[float]:
    times = []
    for _ in range(FIRST):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return times


def _adam(spec, model):
    """The spec's Adam on torch's fused CPU kernel (foreach where this torch has none)."""
    import vattfw
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    try:
        return vattfw.build("optimizer", spec.optimizer, params=named, kernels={"fused": True}), "fused"
    except RuntimeError:
        return vattfw.build("optimizer", spec.optimizer, params=named, kernels={"foreach": True}), "foreach"


def _eager_arm(size: str, compiled: bool):
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    from vattfw.engine.measure import Arm
    from vattfw.model import attach_losses, build_model
    from vattfw.objective import build_objective
    spec = _spec(size)
    torch.manual_seed(spec.run.seed)
    model = build_model(spec.model).train()
    attach_losses(model, build_objective(spec.losses))
    inputs = batch(spec)
    # torch's flop counter has no formula for the CPU flash-attention kernel: count on the math one
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model.losses(model(inputs), inputs)[0].backward()
    model.zero_grad(set_to_none=True)
    opt, kernel = _adam(spec, model)

    def loss(b):
        return model.losses(model(b), b)[0]
    loss_fn = torch.compile(loss) if compiled else loss

    def step():
        total = loss_fn(inputs)
        total.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(total.detach())  # waits for the step (CPU: it has run already)
    info = {"first_steps_s": _first_steps(step), "flops": counter.get_total_flops(),
            "parameters": sum(p.numel() for p in model.parameters()), "optimizer": f"adam ({kernel})",
            "attention": "sdpa (the model's)", "devices": "cpu"}
    return Arm(step, spec.train.global_batch_size, info)


def _trainer_arm(size: str, backend: str):
    if backend == "xla":
        os.environ.setdefault("CPU_NUM_DEVICES", "1")
    return trainer_arm(_spec(size, [f"run.backend={backend}"]))


def trainer_arm(spec):
    """vattfw's step for ``spec`` (its run.backend): the Trainer's set-up (model, optimizer with
    the backend's kernels, sharding) and its ``_train_step`` compiled by the backend, on a fixed
    batch moved to the device once; the first two steps timed into ``info``."""
    from vattfw.engine.measure import Arm
    from vattfw.engine.trainer import Trainer
    inputs = batch(spec)
    trainer = Trainer(spec, loader=[inputs], resume="never", trackers=False, progress=False, checkpoints=False,
                      evaluate=False)
    trainer.setup()
    be = trainer.backend
    dev_batch = {k: be.to_device(v, trainer.specs[k] if be.spmd else None)
                 for k, v in trainer.tracked.lifted(inputs).items()}
    compiled = be.compile(trainer._train_step)
    for g in trainer.optimizer.param_groups:
        g["lr"] = 1e-4  # a fixed rate, as the eager arms' (the schedule is not what is measured)

    def step():
        return float(compiled([dev_batch])[0].cpu())  # waits for the step: timing needs it
    kernels = be.optimizer_kernels()
    info = {"first_steps_s": _first_steps(step), "devices": f"{trainer.devices} ({be.name}, mesh {trainer.sizes})",
            "optimizer": "adam (" + (",".join(k for k, v in kernels.items() if v) or "default") + ")",
            "attention": "sdpa (the model's)"}
    return Arm(step, spec.train.global_batch_size, info)


ARMS = {
    "eager": lambda size: _eager_arm(size, compiled=False),
    "eager_compile": lambda size: _eager_arm(size, compiled=True),
    "torch": lambda size: _trainer_arm(size, "torch"),
    "xla": lambda size: _trainer_arm(size, "xla"),
}
