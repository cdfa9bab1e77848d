"""``transformer`` backbone: the modality-specific VATT encoder (ViT / WaT of the released code).

forward(tokens [N, S, d], mask [N, S] | None) -> (pooled [N, d], sequence [N, S(+1), d]).  Prepends
the learnable aggregation token ``agg`` (unless the tokenizer already provides one), runs the pre-LN
encoder (``encoder.layers.<i>.attn.q|k|v|o``, ``encoder.layers.<i>.mlp.fc1|fc2``, ``encoder.norm``)
and returns the output at position 0 as the pooled feature.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ._encoder import Encoder, EncoderConfig, agg_token, prepend


class Config(EncoderConfig):
    agg_token: bool = Field(True, description="Prepend a learnable aggregation token (its output is the pooled feature).")


class TransformerBackbone(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.encoder = Encoder(cfg)
        self.width = self.dim = self.encoder.width
        self.has_agg = cfg.agg_token
        if cfg.agg_token:
            self.agg = agg_token(self.width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        if self.has_agg:
            x, mask = prepend(self.agg, x, mask)
        seq = self.encoder(x, mask)
        return seq[:, 0], seq


def build(config: Config, **_) -> TransformerBackbone:
    return TransformerBackbone(config)
