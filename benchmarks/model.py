"""Forward+backward time per clip of the video tower (voxel tokenizer + Transformer + 600-way
linear classifier) at the paper's pretraining input (32x224x224, DropToken keeping 784 tokens),
eager PyTorch on the CPU vs torch_xla on the CPU (PJRT_DEVICE=CPU), measured in one process.

``run(size)``: size = "toy" (2 layers x 64 wide, 8x32x32 input: seconds), "small" | "base" |
"medium" | "large" (Table 7) or "paper" (base, medium and large in turn).  Returns a flat dict:
``<size>/params``, ``<size>/eager_s_per_clip``, ``<size>/xla_s_per_clip``,
``<size>/xla_over_eager`` (> 1 = XLA slower) and ``<size>/xla_compile_s`` (first two steps).
Ratios are meaningful only within one run on a quiet machine.
"""
from __future__ import annotations

import os
import time

SIZES = ("small", "base", "medium", "large")


def _section(size: str) -> tuple[dict, tuple[int, ...]]:
    if size == "toy":
        return ({"tokenizers": {"video": {"name": "voxel", "buckets": [2, 2, 2]}},
                 "backbones": {"video": {"name": "transformer", "size": "small", "layers": 2, "width": 64,
                                         "mlp_dim": 128, "heads": 2}},
                 "heads": {"cls": {"name": "linear", "num_classes": 600}}}, (2, 8, 32, 32, 3))
    return ({"tokenizers": {"video": {"name": "voxel"}},
             "backbones": {"video": {"name": "transformer", "size": size}},
             "heads": {"cls": {"name": "linear", "num_classes": 600}}}, (1, 32, 224, 224, 3))


def _time_steps(model, video, steps: int, sync) -> list[float]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        model({"video": video})["logits"].logsumexp(-1).mean().backward()
        sync(model)
        times.append(time.perf_counter() - start)
    return times


def _one(size: str, steps: int) -> dict:
    import torch
    import torch_xla

    from vattfw.model import build_model
    # The autograd engine sizes its per-device queues at the first backward: start XLA first.
    dev = torch_xla.device()
    section, shape = _section(size)
    torch.manual_seed(0)
    model = build_model(section).train()
    video = torch.rand(shape) * 2 - 1
    params = sum(p.numel() for p in model.parameters())
    eager = _time_steps(model, video, steps + 1, lambda m: None)[1:]

    def xla_sync(m):
        torch_xla.sync()
        torch_xla._XLAC._xla_wait_device_ops([])
        next(m.parameters()).grad.cpu()  # the step is done once a gradient is on the host

    model.to(dev)
    vid = video.to(dev)
    compile_times = _time_steps(model, vid, 2, xla_sync)
    lazy = _time_steps(model, vid, steps, xla_sync)
    e, x = min(eager) / shape[0], min(lazy) / shape[0]
    return {f"{size}/params": params, f"{size}/eager_s_per_clip": round(e, 4),
            f"{size}/xla_s_per_clip": round(x, 4), f"{size}/xla_over_eager": round(x / e, 3),
            f"{size}/xla_compile_s": round(sum(compile_times), 2)}


def run(size: str = "toy") -> dict:
    os.environ.setdefault("PJRT_DEVICE", "CPU")
    sizes = ("base", "medium", "large") if size == "paper" else (size,)
    if any(s not in SIZES + ("toy",) for s in sizes):
        raise ValueError(f"size must be toy, paper or one of {SIZES}, got {size!r}")
    out: dict = {}
    for s in sizes:
        out.update(_one(s, steps=5 if s == "toy" else 2))
    return out


if __name__ == "__main__":
    import json
    import sys
    wanted = sys.argv[1] if len(sys.argv) > 1 else "toy"
    for one in ("base", "medium", "large") if wanted == "paper" else (wanted,):
        print(json.dumps(run(one)), flush=True)
