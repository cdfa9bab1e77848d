"""Cost of the contrastive losses: forward+backward of ``mil_nce`` (L = 5 candidates) and
``nce`` (L = 1) on the CPU, eager, at the paper's global batch (B = 2048, D = 256) or a toy
size, as a ratio to the one unavoidable matmul (x·yᵀ, B × D × B·L) and as a share of a
training step.  The step share uses the real model (``vattfw.model.build_model``) with ONE
layer per backbone on a few clips at the paper's input sizes, scaled linearly to B clips:
a full-depth model costs more, so the reported share is an upper bound.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

SIZES = {"paper": {"batch": 2048, "candidates": 5, "dim": 256, "reps": 5, "model_clips": 2,
                   "video": (32, 224, 224), "audio": 153_600, "buckets": (8, 14, 14)},
         "toy": {"batch": 256, "candidates": 5, "dim": 64, "reps": 5, "model_clips": 2,
                 "video": (8, 64, 64), "audio": 15_360, "buckets": (2, 4, 4)}}


def _median_seconds(fn: Callable[[], None], reps: int) -> float:
    fn()  # warm-up: allocator and kernels
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _loss_seconds(name: str, b: int, l: int, d: int, reps: int) -> float:
    import vattfw
    loss = vattfw.build("loss", {"name": name})
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, d, generator=g, requires_grad=True)
    y = torch.randn(b, d, generator=g) if name == "nce" else torch.randn(b, l, d, generator=g)
    y.requires_grad_(True)
    mask = (torch.rand(b, generator=g) > 0.3).float()

    def step() -> None:
        x.grad = y.grad = None
        loss(x, y, mask).backward()
    return _median_seconds(step, reps)


def _matmul_seconds(b: int, l: int, d: int, reps: int) -> float:
    x, y = torch.randn(b, d), torch.randn(b * l, d)
    return _median_seconds(lambda: x @ y.t(), reps)


def _model_seconds_per_clip(cfg: dict) -> float:
    from vattfw.model import build_model
    model = build_model({
        "tokenizers": {"video": {"name": "voxel", "buckets": cfg["buckets"]},
                       "audio": {"name": "waveform", "samples": cfg["audio"]},
                       "text": {"name": "word_embedding", "vocab_size": 1000, "dim": 300}},
        "backbones": {"video": {"name": "transformer", "size": "base", "layers": 1},
                      "audio": {"name": "transformer", "size": "base", "layers": 1},
                      "text": {"name": "t5", "size": "small", "layers": 1}},
        "heads": {"fac": {"name": "fac", "d_va": 512, "d_vt": 256}}}).train()
    n = cfg["model_clips"]
    g = torch.Generator().manual_seed(0)
    batch = {"video": torch.rand(n, *cfg["video"], 3, generator=g) * 2 - 1,
             "audio": torch.rand(n, cfg["audio"], generator=g) * 2 - 1,
             "text": torch.randint(1, 1000, (n, 5, 16), generator=g)}

    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = model(batch)
        sum(v.float().square().mean() for v in out.values()).backward()
    return _median_seconds(step, 2) / n


def run(size: str = "paper") -> dict:
    cfg = SIZES[size]
    b, l, d, reps = cfg["batch"], cfg["candidates"], cfg["dim"], cfg["reps"]
    mil = _loss_seconds("mil_nce", b, l, d, reps)
    nce = _loss_seconds("nce", b, 1, d, reps)
    mm = _matmul_seconds(b, l, d, reps)
    metrics = {"mil_nce_fwd_bwd_ms": mil * 1e3, "nce_fwd_bwd_ms": nce * 1e3, "sim_matmul_ms": mm * 1e3,
               "mil_nce_over_matmul": mil / mm, "mil_nce_over_nce": mil / nce}
    try:
        per_clip = _model_seconds_per_clip(cfg)
    except Exception as exc:  # the benchmark reports the loss even if the model cannot be built
        metrics["model_error"] = f"{type(exc).__name__}: {exc}"
    else:
        step = per_clip * b
        metrics.update({"model_1layer_fwd_bwd_s_per_clip": per_clip,
                        "loss_share_of_step_upper_bound": (mil + nce) / (mil + nce + step)})
    params = {"size": size, "batch": b, "candidates": l, "dim": d, "threads": torch.get_num_threads(),
              "model_clips": cfg["model_clips"], "video": list(cfg["video"]), "audio_samples": cfg["audio"]}
    return {"params": params, "metrics": metrics}


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "toy"), indent=1))
