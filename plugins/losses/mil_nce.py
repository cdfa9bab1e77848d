"""``mil_nce``: multiple-instance NCE between one embedding and L candidates per clip
(video-text in VATT: the L = 5 narrations around a clip, L = 1 allowed).

x [B, D], y [B, L, D]; the L positives of a row are combined by logsumexp inside one
softmax over 2·B·L entries (the released code's AsymmetricNCE).  ``mask`` [B] marks clips
that have text: clips without it are neither rows nor negative texts, but their x stay
negatives for the other clips' texts.
"""
from __future__ import annotations

from pydantic import Field

import vattfw


class Config(vattfw.PluginConfig):
    temperature: float = Field(0.07, gt=0, description="Softmax temperature tau (similarities are cos/tau); paper and code: 0.07.")


def build(config: Config, **deps) -> object:
    from ._contrastive import NCELoss
    return NCELoss("mil_nce", config.temperature, multiple=True)
