"""Config fields every built-in optimizer shares (no torch import: configs load fast)."""
from __future__ import annotations

from pydantic import Field, field_validator, model_validator

import vattfw
from vattfw.spec.base import check_regex


class ClipConfig(vattfw.PluginConfig):
    weight_decay: float = Field(0.0, ge=0, description="Weight decay (Adam/SGD: L2 added to the gradient; AdamW: decoupled). VATT uses none.")
    clip_grad_norm: float | None = Field(
        None, gt=0, description="Clip the global L2 norm of the gradients to this value inside step(); none = no clipping "
                                "(VATT pretraining: none; fine-tuning: 0.75 on the backbone).")
    clip_params: str | None = Field(
        None, description="Regex matched (re.match, so a plain string is a prefix) against parameter names: only "
                          "matching parameters are clipped, and the global norm is theirs, e.g. 'backbone'. "
                          "Needs clip_grad_norm and named parameters; none = clip every parameter.")

    @field_validator("clip_params")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return value if value is None else check_regex(value)

    @model_validator(mode="after")
    def _needs_norm(self) -> "ClipConfig":
        if self.clip_params is not None and self.clip_grad_norm is None:
            raise ValueError("clip_params restricts clipping to a group, so it needs clip_grad_norm to be set")
        return self
