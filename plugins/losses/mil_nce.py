"""``mil_nce``: multiple-instance NCE between one embedding and L candidates per clip
(video-text in VATT: the L = 5 narrations around a clip, L = 1 allowed).

x [B, D], y [B, L, D]; the L positives of a row are combined by logsumexp inside one
softmax over 2·B·L entries (the released code's AsymmetricNCE).  ``mask`` [B] marks clips
that have text: clips without it are neither rows nor negative texts, but their x stay
negatives for the other clips' texts.
"""
from __future__ import annotations

from pydantic import Field, model_validator

import vattfw


class Config(vattfw.PluginConfig):
    temperature: float = Field(0.07, gt=0, description="Softmax temperature tau (similarities are cos/tau); paper and code: 0.07. "
                                                       "With learnable_temperature: the starting value.")
    learnable_temperature: bool = Field(
        False, description="false: tau fixed (the paper and the released code). true: tau is a trained parameter, "
                           "stored as log(1/tau) (CLIP-style), optimised without weight decay, checkpointed with the run.")
    min_temperature: float = Field(
        0.01, gt=0, description="With learnable_temperature: tau never goes below this (1/tau is clamped, CLIP: 100).")

    @model_validator(mode="after")
    def _start_above_floor(self) -> "Config":
        if self.learnable_temperature and self.temperature < self.min_temperature:
            raise ValueError(f"temperature {self.temperature} is below min_temperature {self.min_temperature}: "
                             f"a learnable temperature would start clamped (and get no gradient)")
        return self


def build(config: Config, **deps) -> object:
    from ._contrastive import NCELoss
    return NCELoss("mil_nce", config.temperature, multiple=True,
                   learnable=config.learnable_temperature, min_temperature=config.min_temperature)
