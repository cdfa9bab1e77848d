"""Training throughput: vattfw's compiled XLA train step vs a plain eager PyTorch step of the
same VATT model, batch and optimiser, in one process; plus MFU against this machine's
fp32 matmul peak, measured in the same run.

``run(size)``: "toy" (the engine tests' 1-layer model, seconds), "cpu" (Small backbones,
6 x 512, 8 frames at 112 px, batch 8: the scale of the quickstart's CPU work) or "paper"
(specs/pretrain.yaml's Base-Base-Small model and inputs at batch 2: minutes on a CPU).
Metrics: ``eager_clips_per_s``, ``xla_clips_per_s``, ``xla_over_eager`` (> 1 = XLA faster),
``flops_per_step``, ``peak_gflops``, ``eager_mfu``, ``xla_mfu``, ``xla_compile_s``.
Timings are only comparable within one run on a quiet machine.
"""
from __future__ import annotations

import os
import statistics
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
STEPS = {"toy": (1, 3), "cpu": (1, 5), "paper": (1, 3)}  # eager warm-up, timed (alternating)


def _spec(size: str, out: Path):
    import yaml
    import vattfw
    if size == "paper":
        repo = Path(__file__).resolve().parents[1]
        path = repo / "specs" / "pretrain.yaml"
        overrides = ["train.global_batch_size=2"]
    else:
        path = out / "bench.yaml"
        path.write_text(yaml.safe_dump(TOY if size == "toy" else CPU))
        overrides = []
    warm, timed = STEPS[size]
    overrides += [f"run.output_dir={out}", "run.name=bench", f"train.steps={warm + timed}", "train.log_every=1",
                  "checkpoint.every_steps=1000000", "mesh.data=-1", "schedule.warmup_steps=1", "tracking.trackers=[]"]
    return vattfw.load_spec(path, overrides)


def _eager_setup(spec):
    import torch
    import vattfw
    from vattfw.model import build_model
    from vattfw.objective import build_objective
    torch.manual_seed(spec.run.seed)
    model = build_model(spec.model).train()
    objective = build_objective(spec.losses)
    opt = vattfw.build("optimizer", spec.optimizer, params=[(n, p) for n, p in model.named_parameters()
                                                           if p.requires_grad])

    def step(batch):
        total, _ = objective(model(batch), batch)
        total.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(total)
    return model, step


def _xla_setup(spec, batch):
    """vattfw's own step: the trainer's setup, sharding and compiled ``_train_step``."""
    from torch.utils.flop_counter import FlopCounterMode
    from vattfw.engine.trainer import Trainer
    trainer = Trainer(spec, loader=[batch], resume="never", trackers=False, progress=False, checkpoints=False)
    trainer.setup()
    be = trainer.backend
    dev_batch = {k: be.to_device(v, trainer.specs[k] if be.spmd else None)
                 for k, v in trainer.tracked._lifted(batch).items()}
    compiled = be.compile(trainer._train_step)
    for g in trainer.optimizer.param_groups:
        g["lr"] = 1e-4
    with FlopCounterMode(display=False) as counter:
        out = compiled([dev_batch])
    float(out[0].cpu())

    def step(_batch):
        total = compiled([dev_batch])[0]
        return float(total.cpu())  # waits for the step: timing needs it
    return trainer, step, counter.get_total_flops()


def run(size: str = "paper") -> dict:
    """Eager and XLA steps alternate (after warm-up), so both see the same machine load;
    the medians give the ratio."""
    os.environ.setdefault("PJRT_DEVICE", "CPU")
    import torch
    from vattfw.engine.peak import host_peak_flops
    from vattfw.engine.trainer import synthetic_batch
    if size not in STEPS:
        raise ValueError(f"size must be one of {', '.join(STEPS)}, got {size!r}")
    warm, timed = STEPS[size]
    with tempfile.TemporaryDirectory() as tmp:
        spec = _spec(size, Path(tmp))
        batch = synthetic_batch(spec, spec.train.global_batch_size)
        gen = torch.Generator().manual_seed(0)
        batch = {k: (torch.rand(v.shape, generator=gen) * 2 - 1 if k in ("video", "audio") else v)
                 for k, v in batch.items()}
        if "text" in batch:
            vocab = spec.model.tokenizers["text"].config.vocab_size
            batch["text"] = torch.randint(1, vocab, batch["text"].shape, generator=gen)
        peak = host_peak_flops()  # measured once per machine with fixed threads, as the engine's MFU
        model, eager_step = _eager_setup(spec)
        t0 = time.perf_counter()
        trainer, xla_step, flops = _xla_setup(spec, batch)
        xla_step(batch)  # the second compile (optimiser state now exists)
        compile_s = time.perf_counter() - t0
        for _ in range(warm):
            eager_step(batch)
        eager, xla = [], []
        for _ in range(timed):
            t = time.perf_counter()
            eager_step(batch)
            eager.append(time.perf_counter() - t)
            t = time.perf_counter()
            xla_step(batch)
            xla.append(time.perf_counter() - t)
    b = spec.train.global_batch_size
    eager_rate, xla_rate = b / statistics.median(eager), b / statistics.median(xla)
    return {
        "params": {"model": {"toy": "tiny 1-layer", "cpu": "small x3"}.get(size, "BBS (pretrain.yaml)"),
                   "devices": str(trainer.devices), "batch": str(b), "compile": spec.run.compile,
                   "mesh": str(trainer.sizes)},
        "metrics": {"parameters": sum(p.numel() for p in model.parameters()),
                    "eager_clips_per_s": eager_rate, "xla_clips_per_s": xla_rate,
                    "xla_over_eager": xla_rate / eager_rate, "flops_per_step": flops,
                    "peak_gflops": peak / 1e9, "eager_mfu": flops * eager_rate / b / peak,
                    "xla_mfu": flops * xla_rate / b / peak, "xla_compile_s": compile_s,
                    "eager_step_s": statistics.median(eager), "xla_step_s": statistics.median(xla)},
    }
