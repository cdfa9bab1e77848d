"""torch optimizers that clip gradients inside ``step()`` (imported lazily: needs torch).

``param_group["lr"]`` may be a Python float that the engine changes every step: the
wrapped torch optimizers (Adam/AdamW/SGD, ``capturable=False``) read it as a Python
scalar each step, and torch_xla passes non-special scalars to the graph as data, so a
changing rate does not recompile (tests/objective check it).
"""
from __future__ import annotations

import re
from typing import Any, Iterable

import torch

from vattfw import Problem, UserError


def split_params(plugin: str, params: Any) -> tuple[list[dict], dict[int, str] | None]:
    """Accept (name, Parameter) pairs, plain Parameters, or groups (dicts with ``params``
    holding either); return torch param groups and id(param) -> name (None if unnamed)."""
    if params is None:
        raise UserError(Problem(f"optimizer {plugin!r}: build needs params= (model.named_parameters())"))
    items = list(params)
    groups = items if items and all(isinstance(i, dict) for i in items) else [{"params": items}]
    names: dict[int, str] = {}
    unnamed = False
    out = []
    for group in groups:
        tensors = []
        for item in list(group["params"]):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                names[id(item[1])] = item[0]
                tensors.append(item[1])
            else:
                unnamed = True
                tensors.append(item)
        out.append({**group, "params": tensors})
    return out, (None if unnamed else names)


def clip_targets(plugin: str, groups: list[dict], names: dict[int, str] | None,
                 pattern: str | None) -> list[torch.Tensor]:
    params = [p for g in groups for p in g["params"]]
    if pattern is None:
        return params
    if names is None:
        raise UserError(Problem(f"optimizer {plugin!r}: clip_params={pattern!r} needs named parameters "
                                f"(pass params=model.named_parameters()), got plain tensors"))
    regex = re.compile(pattern)
    chosen = [p for p in params if regex.match(names[id(p)])]
    if not chosen:
        sample = ", ".join(list(names.values())[:5])
        raise UserError(Problem(f"optimizer {plugin!r}: clip_params={pattern!r} matches no parameter name "
                                f"(names look like: {sample})"))
    return chosen


class ClipMixin:
    """Clips the global norm of ``_clip_params``' gradients to ``_clip_norm`` before the update."""

    _clip_params: list[torch.Tensor] = []
    _clip_norm: float | None = None

    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:  # gradients must exist before they are clipped
            with torch.enable_grad():
                loss = closure()
        if self._clip_norm is not None:
            # No .item(): total norm and scale stay on the device (XLA-friendly).
            torch.nn.utils.clip_grad_norm_(self._clip_params, self._clip_norm)
        super().step()  # type: ignore[misc]
        return loss


class Adam(ClipMixin, torch.optim.Adam):
    pass


class AdamW(ClipMixin, torch.optim.AdamW):
    pass


class SGD(ClipMixin, torch.optim.SGD):
    pass


def make(cls: type, plugin: str, params: Iterable, clip_norm: float | None, clip_pattern: str | None,
         **options: Any) -> torch.optim.Optimizer:
    groups, names = split_params(plugin, params)
    targets = clip_targets(plugin, groups, names, clip_pattern) if clip_norm is not None else []
    opt = cls(groups, **options)
    opt._clip_params, opt._clip_norm = targets, clip_norm
    return opt
