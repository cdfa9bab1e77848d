"""Optimiser state made before the first step, so the train step traces one graph.

torch optimisers create their state inside the first ``step()``: traced, that first step is
a graph without state inputs and every later step another one with them, so the step
compiles twice (at the quickstart's size, about half of the whole compile time).  Made
beforehand, exactly as the optimiser itself would make it, the state is ordinary device
data from step 1 on and the first step's graph is the one every step reuses.

Only state whose lazy initial value does not depend on the first gradient can be made
early: Adam's and AdamW's moments (zeros) and step counter (0).  SGD's momentum buffer starts
as a copy of the first gradient, so SGD with momentum (and any optimiser this module does not
know) keeps creating its state lazily and compiles twice.
"""
from __future__ import annotations

import torch


def create_state(optimizer: torch.optim.Optimizer) -> bool:
    """Fill an optimiser without state with its initial state; True if it did.

    Mirrors ``torch.optim.Adam._init_group`` (torch 2.9; AdamW is a subclass): the step
    counter is a CPU float tensor unless ``capturable``/``fused``, the moments are zeros like
    the parameter.  Every trainable parameter gets state, also one that may never receive a
    gradient (Adam skips it; its zero state is only carried along in checkpoints)."""
    if optimizer.state or not isinstance(optimizer, torch.optim.Adam):
        return False
    for group in optimizer.param_groups:
        on_device = group.get("capturable") or group.get("fused")
        for p in group["params"]:
            if not p.requires_grad:
                continue
            dtype = torch.float64 if torch.get_default_dtype() == torch.float64 and not group.get("fused") \
                else torch.float32
            state = {"step": torch.zeros((), dtype=dtype, device=p.device) if on_device
                     else torch.tensor(0.0, dtype=dtype)}
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group.get("amsgrad"):
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            optimizer.state[p] = state
    return True
