"""``adamw``: Adam with decoupled weight decay, with optional gradient clipping inside step()."""
from __future__ import annotations

from pydantic import Field

from ._common import ClipConfig


class Config(ClipConfig):
    lr: float = Field(1e-4, gt=0, description="Base learning rate (the schedule scales it each step).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam (beta1, beta2).")
    eps: float = Field(1e-8, gt=0, description="Adam epsilon (1e-8 = Adam's default).")
    weight_decay: float = Field(0.01, ge=0, description="Decoupled weight decay (torch's AdamW default 0.01).")


def build(config: Config, params=None, kernels=None, **deps) -> object:
    """``kernels``: the backend's optimiser options (fused / foreach) for its device."""
    from ._clipped import AdamW, make
    return make(AdamW, "adamw", params, config.clip_grad_norm, config.clip_params, **(kernels or {}), lr=config.lr,
                betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)
