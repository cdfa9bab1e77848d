"""``cross_entropy``: softmax cross-entropy with label smoothing (video fine-tuning; paper
A.2.5: α = 0.1).  x = logits [B, C]; y = class ids [B] (−1 = no label, the row is left
out of the mean) or target rows [B, C] (e.g. after mixup); optional mask [B]."""
from __future__ import annotations

from pydantic import Field

import vattfw


class Config(vattfw.PluginConfig):
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="α in y·(1 − α) + α/C; paper and code: 0.1 for video fine-tuning.")


def build(config: Config, **deps) -> object:
    from ._classification import CrossEntropy
    return CrossEntropy(config.label_smoothing)
