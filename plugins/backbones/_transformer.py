"""Implementation of the ``transformer`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import torch
from torch import nn

from ._config import EncoderConfig
from ._encoder import Encoder, agg_token, prepend


class TransformerBackbone(nn.Module):
    def __init__(self, cfg: EncoderConfig, agg: bool):
        super().__init__()
        self.encoder = Encoder(cfg)
        self.width = self.dim = self.encoder.width
        self.has_agg = agg
        if agg:
            self.agg = agg_token(self.width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        if self.has_agg:
            x, mask = prepend(self.agg, x, mask)
        seq = self.encoder(x, mask)
        return seq[:, 0], seq


