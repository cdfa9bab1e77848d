"""``t5`` backbone (text): a T5-style encoder as the released text model (T5-small by default).

No biases; RMS norm (x * rsqrt(mean(x^2) + eps) * g) before attention; attention NOT scaled by
1/sqrt(d_kv); GELU FFN; a relative position bias (32 buckets, max distance 64, bidirectional)
computed in layer 0 and reused by every layer; final RMS norm; input dropout.  The released code
normalises before the FFN with a mean-centring LayerNorm (``ffn_norm: layer``); T5 itself uses RMS
norm there (``ffn_norm: rms``, the default).  It expects the tokenizer to provide the aggregation
token at position 0 (``word_embedding`` does by default).  Module names as in ``transformer``:
``layers.<i>.attn.q|k|v|o``, ``layers.<i>.mlp.fc1|fc2``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field


from ._config import EncoderConfig


class Config(EncoderConfig):
    size: Literal["small", "base", "medium", "large", "xlarge"] = Field("small", description="Table 7 size (T5-small = small).")
    buckets: int = Field(32, ge=2, description="Relative position buckets (half per direction).")
    max_distance: int = Field(64, ge=2, description="Distance beyond which offsets share the last bucket.")
    ffn_norm: Literal["rms", "layer"] = Field(
        "rms", description="Norm before the FFN: rms (T5) or layer (the released code's Keras LayerNormalization).")
    agg_token: bool = Field(False, description="Prepend an aggregation token here (off: the word_embedding tokenizer provides it).")


def build(config: Config, **_) -> object:
    from ._t5 import T5Backbone
    return T5Backbone(config, config.buckets, config.max_distance, config.ffn_norm, config.agg_token)
