"""``warmup_cosine``: linear warmup from 0 to the base rate, then a cosine from the base
rate to ``end_lr`` at the last step.

With p = (step - warmup_steps) / (total_steps - warmup_steps) in [0, 1]:
``quarter`` (the paper's "quarter-period cosine"): lr = end + (base - end)·cos(π/2·p);
``half`` (the released code, and the paper's fine-tuning): lr = end + (base - end)·(1 + cos(π·p))/2.
Defaults are the paper's pretraining (10k warmup, quarter period, 1e-4 -> 5e-5); the
released code is warmup_steps: 5000, period: half.  Steps past the end stay at end_lr.
A warmup longer than the run is allowed (short smoke runs): the rate then only ramps.
"""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

import vattfw


class Config(vattfw.PluginConfig):
    warmup_steps: int = Field(10_000, ge=0, description="Steps of linear warmup from 0 (paper: 10k; released code: 5k; fine-tuning: 2.5k).")
    end_lr: float = Field(5e-5, ge=0, description="Rate reached at the last step (paper pretraining: 5e-5; fine-tuning: 0).")
    period: Literal["quarter", "half"] = Field(
        "quarter", description="quarter: end + (base-end)·cos(π/2·p) (paper pretraining); "
                               "half: end + (base-end)·(1+cos(π·p))/2 (released code, fine-tuning).")


def build(config: Config, base_lr: float | None = None, total_steps: int | None = None, **deps) -> object:
    if base_lr is None or total_steps is None:
        raise vattfw.UserError(vattfw.Problem(
            f"schedule 'warmup_cosine': build needs base_lr= and total_steps=, got base_lr={base_lr!r}, "
            f"total_steps={total_steps!r}"))
    return WarmupCosine(float(base_lr), int(total_steps), config.warmup_steps, config.end_lr, config.period)


class WarmupCosine:
    """``lr(step) -> float`` (a plain Python float, computed on the host each step)."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int, end_lr: float, period: str):
        self.base_lr, self.total_steps, self.warmup_steps = base_lr, total_steps, warmup_steps
        self.end_lr, self.period = end_lr, period

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * step / self.warmup_steps
        # max(1, ...): the released code divides by zero (NaN) at the last step; we do not.
        p = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        shape = math.cos(math.pi / 2 * p) if self.period == "quarter" else (1 + math.cos(math.pi * p)) / 2
        return self.end_lr + (self.base_lr - self.end_lr) * shape

    def __repr__(self) -> str:
        return (f"WarmupCosine(base_lr={self.base_lr}, end_lr={self.end_lr}, warmup_steps={self.warmup_steps}, "
                f"total_steps={self.total_steps}, period={self.period!r})")
