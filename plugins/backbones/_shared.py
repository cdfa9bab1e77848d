"""Implementation of the ``shared`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import torch
from torch import nn

import vattfw

from ._encoder import Encoder, EncoderConfig, agg_token, dense, prepend

ENCODER_FIELDS = tuple(EncoderConfig.model_fields)


class SharedBackbone(nn.Module):
    def __init__(self, encoder: Encoder, agg: bool, pre_projection: bool, post_dim: int):
        super().__init__()
        self.encoder = encoder
        self.width = encoder.width
        self.has_agg = agg
        if pre_projection:
            self.pre = dense(self.width, self.width)
        if agg:
            self.agg = agg_token(self.width)
        if post_dim:
            self.post = dense(self.width, post_dim)
        self.dim = post_dim or self.width

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        if hasattr(self, "pre"):
            x = nn.functional.gelu(self.pre(x))
        if self.has_agg:
            x, mask = prepend(self.agg, x, mask)
        seq = self.encoder(x, mask)
        pooled = seq[:, 0]
        if hasattr(self, "post"):
            pooled = nn.functional.gelu(self.post(pooled))
        return pooled, seq




def make(config: EncoderConfig, shared: dict, modality: str, agg: bool, pre_projection: bool,
         post_dim: int) -> SharedBackbone:
    """The backbone of one modality around the encoder in ``shared`` (made by the first call)."""
    settings = {k: getattr(config, k) for k in ENCODER_FIELDS}
    if "encoder" not in shared:
        shared["encoder"], shared["settings"], shared["first"] = Encoder(config), settings, modality
    elif shared["settings"] != settings:
        raise vattfw.UserError(vattfw.Problem(
            f"backbone 'shared' for {modality}: encoder settings {settings} differ from those of "
            f"{shared['first']} ({shared['settings']}); one shared encoder needs one setting"))
    return SharedBackbone(shared["encoder"], agg, pre_projection, post_dim)
