"""``linear`` head: an n-way linear classifier on one modality's pooled feature (fine-tuning).

``<modality>_pooled`` -> Dropout -> Linear(d, num_classes) (Xavier-uniform, bias zero or, with
``bias_init: prior``, -log(C - 1) as the released audio classifier) -> ``output`` (default ``logits``).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

import vattfw


class Config(vattfw.PluginConfig):
    num_classes: int = Field(description="Number of classes C (600 for Kinetics-600).", ge=2)
    modality: Literal["video", "audio", "text"] = Field("video", description="Whose pooled feature is classified.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the classifier (released code: 0.5 video, 0 audio).")
    bias_init: Literal["zero", "prior"] = Field("zero", description="zero, or -log(C-1) (sigmoid prior, multi-label audio).")
    output: str = Field("logits", description="Output key in the model's result dict.")


def build(config: Config, dims: dict[str, int], **_) -> object:
    from ._linear import LinearHead
    return LinearHead(dims, config.num_classes, config.modality, config.dropout, config.bias_init,
                      config.output)
