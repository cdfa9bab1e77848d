"""``nce``: symmetric InfoNCE between two single embeddings per clip (video-audio in VATT).

x [B, D] and y [B, D]; one softmax over both directions per row (2·B entries), as the
released code's AsymmetricNCE with one candidate per clip.  ``mask`` [B] marks clips
that have the y modality.
"""
from __future__ import annotations

from pydantic import Field

import vattfw


class Config(vattfw.PluginConfig):
    temperature: float = Field(0.07, gt=0, description="Softmax temperature tau (similarities are cos/tau); paper and code: 0.07.")


def build(config: Config, **deps) -> object:
    from ._contrastive import NCELoss
    return NCELoss("nce", config.temperature, multiple=False)
