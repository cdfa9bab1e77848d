"""Implementation of the ``linear`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import math

import torch
from torch import nn

import vattfw

from .linear import Config
from vattfw_plugins.backbones._encoder import dense


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


