"""Throughput and model FLOPs utilisation of a run, kept apart from the training loop.

Only intervals between two logged steps that compiled nothing are timed (a compile says nothing
of speed).  FLOPs per step are counted once, on the first step's shapes, on a ``meta``-device copy
of the model made before it was distributed: under torch_xla a step traced inside FlopCounterMode
records other view ops, a graph of its own that would compile once more.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import torch

log = logging.getLogger("vattfw.engine")


class Meter:
    """``clips_per_s`` and ``mfu`` per logged interval and for the whole run."""

    def __init__(self, clips_per_step: int, peak_flops: float | None):
        self.clips_per_step, self.peak_flops = clips_per_step, peak_flops
        self.flops_per_step: int | None = None  # None until the first step is counted
        self.timed_steps, self.timed_s = 0, 0.0
        self._last: tuple[int, float, int] | None = None  # (step, time, compiles) at the last mark

    def mark(self, step: int, now: float, compiles: int) -> dict[str, float]:
        """Metrics of the interval since the previous mark (none when it compiled)."""
        last, self._last = self._last, (step, now, compiles)
        if last is None or step <= last[0] or compiles != last[2]:
            return {}
        steps, seconds = step - last[0], now - last[1]
        self.timed_steps += steps
        self.timed_s += seconds
        out = {"clips_per_s": steps * self.clips_per_step / seconds}
        if self.flops_per_step and self.peak_flops:
            out["mfu"] = self.flops_per_step * steps / seconds / self.peak_flops
        return out

    def summary(self) -> dict[str, float]:
        counted = {"flops_per_step": self.flops_per_step} if self.flops_per_step else {}
        if not self.timed_steps:
            return counted
        out = {**counted, "clips_per_s": self.timed_steps * self.clips_per_step / self.timed_s}
        if self.flops_per_step and self.peak_flops:
            out["mfu"] = self.flops_per_step * self.timed_steps / self.timed_s / self.peak_flops
        return out

    def first_step(self, compiled: Callable, batches: list[dict], probe: Callable,
                   warn: Callable[[str], None] | None = None) -> Any:
        """Run the first step and count its FLOPs (every matmul of forward and backward once) on
        ``probe``, the whole step (global batch, whole model) on ``meta`` tensors.  A model the
        meta device cannot run gets 0 FLOPs (no MFU), saying why through ``warn`` (default: the
        log), not a second compile."""
        from torch.utils.flop_counter import FlopCounterMode
        try:
            with FlopCounterMode(display=False) as counter:
                probe(batches)
        except Exception as exc:  # (an op without a meta kernel)
            first = (str(exc).splitlines() or [""])[0]
            (warn or log.warning)(f"FLOPs not counted (the model does not run on the meta device: "
                                  f"{type(exc).__name__}: {first}); MFU is not reported")
            self.flops_per_step = 0
            return compiled(batches)
        self.flops_per_step = counter.get_total_flops()
        return compiled(batches)


def meta_copy(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every parameter and buffer replaced by an empty ``meta`` tensor of its
    shape: copying it reads and allocates no device memory."""
    import copy
    memo: dict[int, Any] = {}
    for t in [*model.parameters(), *model.buffers()]:
        meta = torch.empty(t.shape, dtype=t.dtype, device="meta")
        memo[id(t)] = torch.nn.Parameter(meta, t.requires_grad) if isinstance(t, torch.nn.Parameter) else meta
    return copy.deepcopy(model, memo)
