"""The optimiser's parameter groups: ``train.lr_scale`` multipliers and the loss parameters' group.

A group carries ``lr_scale`` (absent = 1); the engine sets each group's ``lr`` to the schedule's
rate times it before every step, so one schedule drives every group (a lower rate for a pretrained
backbone, a higher one for a tower that learns slowly)."""
from __future__ import annotations

import re
from typing import Mapping

from ..errors import Problem, UserError
from ..model import LOSSES_PREFIX


def scale_of(name: str, patterns: list[tuple[re.Pattern, str, float]], used: set[str]) -> float:
    """The multiplier of the first pattern that matches ``name`` (re.match: a prefix), else 1."""
    for regex, text, scale in patterns:
        if regex.match(name):
            used.add(text)
            return scale
    return 1.0


def param_groups(named: list, lr_scale: Mapping[str, float]) -> list:
    """(name, parameter) pairs -> the optimiser's ``params``: the flat list when every parameter
    shares one rate and weight decay (as earlier versions built it, so their optimiser states
    load), else one group per (multiplier, loss parameter) in order of first appearance; loss
    parameters (a learnable temperature) take no weight decay, as CLIP's logit scale."""
    patterns = [(re.compile(text), text, float(scale)) for text, scale in lr_scale.items()]
    used: set[str] = set()
    buckets: dict[tuple[float, bool], list] = {}
    for name, p in named:
        key = (scale_of(name, patterns, used), name.startswith(LOSSES_PREFIX))
        buckets.setdefault(key, []).append((name, p))
    unused = [text for _, text, _ in patterns if text not in used]
    if unused:
        sample = ", ".join(sorted({n.rsplit(".", 1)[0] for n, _ in named})[:6])
        raise UserError(Problem(f"train.lr_scale: pattern {unused[0]!r} matches no trainable parameter name "
                                f"that an earlier pattern did not take (re.match from the start; names look "
                                f"like: {sample})", "train.lr_scale"))
    if list(buckets) == [(1.0, False)]:
        return list(named)
    return [{"params": params, **({"lr_scale": scale} if scale != 1.0 else {}),
             **({"weight_decay": 0.0} if loss else {})} for (scale, loss), params in buckets.items()]
