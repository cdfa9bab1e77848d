"""``shared`` backbone: the modality-agnostic VATT-MA (the released ``UniversalVATT``).

One ``Encoder`` serves every modality that names this backbone (each modality still passes through
it separately: no joint sequence).  Per modality: ``pre`` (Linear(d, d) + GELU, optional), the
aggregation token ``agg`` and ``post`` (Linear(d, post_dim) + GELU, optional; pooled features are
then post_dim wide).  The model passes one ``shared`` dict to every backbone build; the first
``shared`` backbone creates the encoder there and the others reuse it, so its parameters exist once.
"""
from __future__ import annotations

from pydantic import Field


from ._config import EncoderConfig, Size


class Config(EncoderConfig):
    size: Size = Field("medium", description="Table 7 size of the shared encoder (VATT-MA uses medium).")
    pre_projection: bool = Field(True, description="Linear(d, d) + GELU before the encoder (off for text, whose "
                                 "tokenizer already projects to d).")
    post_dim: int = Field(1024, ge=0, description="Width of the Linear + GELU after the encoder; 0 = none.")
    agg_token: bool = Field(True, description="Prepend a modality-specific aggregation token.")


def build(config: Config, shared: dict | None = None, modality: str = "?", **_) -> object:
    from ._shared import make
    return make(config, {} if shared is None else shared, modality, config.agg_token, config.pre_projection,
                config.post_dim)
