"""``linear`` head: an n-way linear classifier on one modality's pooled feature (fine-tuning).

``<modality>_pooled`` -> Dropout -> Linear(d, num_classes) (Xavier-uniform, bias zero or, with
``bias_init: prior``, -log(C - 1) as the released audio classifier) -> ``output`` (default ``logits``).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

import vattfw
from vattfw_plugins.backbones._encoder import dense


class Config(vattfw.PluginConfig):
    num_classes: int = Field(description="Number of classes C (600 for Kinetics-600).", ge=2)
    modality: Literal["video", "audio", "text"] = Field("video", description="Whose pooled feature is classified.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the classifier (released code: 0.5 video, 0 audio).")
    bias_init: Literal["zero", "prior"] = Field("zero", description="zero, or -log(C-1) (sigmoid prior, multi-label audio).")
    output: str = Field("logits", description="Output key in the model's result dict.")


class LinearHead(nn.Module):
    def __init__(self, cfg: Config, dims: dict[str, int]):
        super().__init__()
        if cfg.modality not in dims:
            raise vattfw.UserError(vattfw.Problem(
                f"head 'linear': modality {cfg.modality!r} has no backbone; configured: {sorted(dims)}"))
        self.cfg = cfg
        self.drop = nn.Dropout(cfg.dropout)
        self.fc = dense(dims[cfg.modality], cfg.num_classes)
        if cfg.bias_init == "prior":
            nn.init.constant_(self.fc.bias, -math.log(cfg.num_classes - 1))

    def forward(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        key = f"{self.cfg.modality}_pooled"
        return {self.cfg.output: self.fc(self.drop(feats[key]))} if key in feats else {}


def build(config: Config, dims: dict[str, int], **_) -> LinearHead:
    return LinearHead(config, dims)
