"""``adam``: Adam (VATT pretraining), with optional gradient clipping inside step().

Defaults follow the paper: lr 1e-4, betas (0.9, 0.999); the paper does not state eps, so
the default is Adam's own 1e-8 (Kingma & Ba); the released code uses 1e-7 (set eps: 1.0e-7).
"""
from __future__ import annotations

from pydantic import Field

from ._common import ClipConfig


class Config(ClipConfig):
    lr: float = Field(1e-4, gt=0, description="Base learning rate (the schedule scales it each step); paper pretraining: 1e-4.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam (beta1, beta2); paper and code: (0.9, 0.999).")
    eps: float = Field(1e-8, gt=0, description="Adam epsilon; paper: unstated (Adam's 1e-8, the default); released code: 1e-7.")


def build(config: Config, params=None, kernels=None, **deps) -> object:
    """``kernels``: the backend's optimiser options (fused / foreach) for its device."""
    from ._clipped import Adam, make
    return make(Adam, "adam", params, config.clip_grad_norm, config.clip_params, **(kernels or {}), lr=config.lr,
                betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)
