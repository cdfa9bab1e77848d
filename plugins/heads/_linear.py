"""Implementation of the ``linear`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import math

import torch
from torch import nn

import vattfw

from vattfw_plugins.backbones._encoder import dense


class LinearHead(nn.Module):
    def __init__(self, dims: dict[str, int], num_classes: int, modality: str, dropout: float, bias_init: str,
                 output: str):
        super().__init__()
        if modality not in dims:
            raise vattfw.UserError(vattfw.Problem(
                f"head 'linear': modality {modality!r} has no backbone; configured: {sorted(dims)}"))
        self.modality, self.output = modality, output
        self.drop = nn.Dropout(dropout)
        self.fc = dense(dims[modality], num_classes)
        if bias_init == "prior":
            nn.init.constant_(self.fc.bias, -math.log(num_classes - 1))

    def forward(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        key = f"{self.modality}_pooled"
        return {self.output: self.fc(self.drop(feats[key]))} if key in feats else {}


