"""``transformer`` backbone: the modality-specific VATT encoder (ViT / WaT of the released code).

forward(tokens [N, S, d], mask [N, S] | None) -> (pooled [N, d], sequence [N, S(+1), d]).  Prepends
the learnable aggregation token ``agg`` (unless the tokenizer already provides one), runs the pre-LN
encoder (``encoder.layers.<i>.attn.q|k|v|o``, ``encoder.layers.<i>.mlp.fc1|fc2``, ``encoder.norm``)
and returns the output at position 0 as the pooled feature.
"""
from __future__ import annotations

from pydantic import Field


from ._config import EncoderConfig


class Config(EncoderConfig):
    agg_token: bool = Field(True, description="Prepend a learnable aggregation token (its output is the pooled feature).")


def build(config: Config, **_) -> object:
    from ._transformer import TransformerBackbone
    return TransformerBackbone(config, config.agg_token)
