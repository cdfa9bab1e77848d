"""``shared`` backbone: the modality-agnostic VATT-MA (the released ``UniversalVATT``).

One ``Encoder`` serves every modality that names this backbone (each modality still passes through
it separately: no joint sequence).  Per modality: ``pre`` (Linear(d, d) + GELU, optional), the
aggregation token ``agg`` and ``post`` (Linear(d, post_dim) + GELU, optional; pooled features are
then post_dim wide).  The model passes one ``shared`` dict to every backbone build; the first
``shared`` backbone creates the encoder there and the others reuse it, so its parameters exist once.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

import vattfw

from ._encoder import Encoder, EncoderConfig, Size, agg_token, dense, prepend

ENCODER_FIELDS = tuple(EncoderConfig.model_fields)


class Config(EncoderConfig):
    size: Size = Field("medium", description="Table 7 size of the shared encoder (VATT-MA uses medium).")
    pre_projection: bool = Field(True, description="Linear(d, d) + GELU before the encoder (off for text, whose "
                                 "tokenizer already projects to d).")
    post_dim: int = Field(1024, ge=0, description="Width of the Linear + GELU after the encoder; 0 = none.")
    agg_token: bool = Field(True, description="Prepend a modality-specific aggregation token.")


class SharedBackbone(nn.Module):
    def __init__(self, cfg: Config, encoder: Encoder):
        super().__init__()
        self.encoder = encoder
        self.width = encoder.width
        self.has_agg = cfg.agg_token
        if cfg.pre_projection:
            self.pre = dense(self.width, self.width)
        if cfg.agg_token:
            self.agg = agg_token(self.width)
        if cfg.post_dim:
            self.post = dense(self.width, cfg.post_dim)
        self.dim = cfg.post_dim or self.width

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


def build(config: Config, shared: dict | None = None, modality: str = "?", **_) -> SharedBackbone:
    shared = {} if shared is None else shared
    settings = {k: getattr(config, k) for k in ENCODER_FIELDS}
    if "encoder" not in shared:
        shared["encoder"], shared["settings"], shared["first"] = Encoder(config), settings, modality
    elif shared["settings"] != settings:
        raise vattfw.UserError(vattfw.Problem(
            f"backbone 'shared' for {modality}: encoder settings {settings} differ from those of "
            f"{shared['first']} ({shared['settings']}); one shared encoder needs one setting"))
    return SharedBackbone(config, shared["encoder"])
