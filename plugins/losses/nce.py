"""``nce``: symmetric InfoNCE between two single embeddings per clip (video-audio in VATT).

x [B, D] and y [B, D]; one softmax over both directions per row (2·B entries), as the
released code's AsymmetricNCE with one candidate per clip.  ``mask`` [B] marks clips
that have the y modality.
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
    return NCELoss("nce", config.temperature, multiple=False,
                   learnable=config.learnable_temperature, min_temperature=config.min_temperature)
