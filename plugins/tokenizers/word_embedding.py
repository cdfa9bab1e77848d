"""``word_embedding`` tokenizer (text): word ids -> embedding table -> aggregation token -> Linear + GELU.

Input ``[N, W]`` int64 word ids (0 = padding; the model flattens ``[B, L, W]`` to ``[B*L, W]``)
-> ``[N, W+1, d]`` tokens and a ``[N, W+1]`` mask (1 = real word; the aggregation token at position
0 is always 1).  The table comes from a user-supplied ``.npy`` of shape [vocab_size, dim] and is frozen
by default (the released code: frozen word2vec); ``trainable: true`` or ``vectors: null`` (random
init, Keras' uniform(-0.05, 0.05)) give the paper's learnable one-hot x matrix.  Parameters:
``table``, ``agg`` (when ``agg_token``), ``proj`` (no bias), optionally ``pos``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

import vattfw

from ._configs import PositionConfig


class Config(vattfw.PluginConfig):
    vectors: str | None = Field(None, description="Path to a .npy [vocab_size, dim] of word vectors; null = random init.",
                                json_schema_extra={"path": True})
    vocab_size: int = Field(65_536, ge=2, description="Vocabulary size (rows of the table; id 0 = padding).")
    dim: int = Field(300, ge=1, description="Width of the word vectors.")
    trainable: bool | None = Field(None, description="Train the table; null = frozen when vectors are given, else trainable.")
    max_words: int = Field(16, ge=1, description="Most words per caption (W).")
    agg_token: bool = Field(True, description="Prepend the learnable aggregation token here (before the projection), "
                            "as the released text model does; false when the backbone adds its own (VATT-MA).")
    position: Literal["none", "learned"] = Field(
        "none", description="none (T5 uses a relative bias instead) or a learned max_words-bucket table (VATT-MA text).")
    position_config: PositionConfig = Field(default_factory=PositionConfig, description="Table settings when position = learned.")


def build(config: Config, dim: int, **_) -> object:
    from ._word_embedding import WordEmbeddingTokenizer
    return WordEmbeddingTokenizer(dim, config.vectors, config.vocab_size, config.dim, config.trainable,
                                  config.max_words, config.agg_token, config.position, config.position_config)
