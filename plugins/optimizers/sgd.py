"""``sgd``: SGD with momentum (VATT fine-tuning: lr 0.005, momentum 0.9, no Nesterov),
with optional gradient clipping inside step() (fine-tuning clips the backbone at 0.75:
clip_grad_norm: 0.75, clip_params: backbone)."""
from __future__ import annotations

from pydantic import Field

from ._common import ClipConfig


class Config(ClipConfig):
    lr: float = Field(0.005, gt=0, description="Base learning rate (the schedule scales it each step); paper video fine-tuning: 0.005.")
    momentum: float = Field(0.9, ge=0, description="Momentum; paper and code: 0.9.")
    nesterov: bool = Field(False, description="Nesterov momentum; VATT: no.")


def build(config: Config, params=None, kernels=None, **deps) -> object:
    """``kernels``: the backend's optimiser options (fused / foreach) for its device."""
    from ._clipped import SGD, make
    return make(SGD, "sgd", params, config.clip_grad_norm, config.clip_params, **(kernels or {}), lr=config.lr,
                momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay)
