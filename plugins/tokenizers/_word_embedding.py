"""Implementation of the ``word_embedding`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import vattfw

from ._configs import PositionConfig
from ._position import GridPositions, bad_shape


class WordEmbeddingTokenizer(nn.Module):
    def __init__(self, dim: int, vectors: str | None, vocab_size: int, width: int, trainable: bool | None,
                 max_words: int, agg_token: bool, position: str, position_config: PositionConfig):
        """``width``: of the word vectors (the config's ``dim``); ``dim``: of the tokens it gives."""
        super().__init__()
        self.dim, self.max_words, self.position = dim, max_words, position
        self.provides_agg = agg_token
        self.table = nn.Embedding(vocab_size, width)
        if vectors is None:
            nn.init.uniform_(self.table.weight, -0.05, 0.05)
        else:
            self.table.weight.data.copy_(load_vectors(vectors, vocab_size, width))
        self.table.weight.requires_grad_(trainable if trainable is not None else vectors is None)
        if agg_token:
            std = (2.0 / (1 + width)) ** 0.5  # Keras glorot-normal of a [1, dim] weight
            self.agg = nn.Parameter(nn.init.trunc_normal_(torch.empty(width), std=std, a=-2 * std, b=2 * std))
        self.proj = nn.Linear(width, dim, bias=False)
        nn.init.xavier_uniform_(self.proj.weight)
        if position == "learned":
            self.pos = GridPositions((max_words,), dim, position_config)

    def forward(self, ids: torch.Tensor):
        if ids.dim() != 2 or ids.shape[1] > self.max_words:
            raise bad_shape("word_embedding", f"[N, W] word ids with W <= {self.max_words}", tuple(ids.shape),
                            "too many words" if ids.dim() == 2 else "")
        mask = (ids != 0).to(torch.float32)
        x = self.table(ids)
        if self.provides_agg:
            x = torch.cat([self.agg.expand(ids.shape[0], 1, -1).to(x.dtype), x], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        x = nn.functional.gelu(self.proj(x))
        if self.position == "learned":
            start = 1 if self.provides_agg else 0
            x = torch.cat([x[:, :start], self.pos(x[:, start:], (ids.shape[1],))], dim=1)
        return x, mask


def load_vectors(vectors: str, vocab_size: int, dim: int) -> torch.Tensor:
    import numpy as np
    path = Path(vectors)
    if not path.is_file():
        raise vattfw.UserError(vattfw.Problem(f"tokenizer 'word_embedding': vectors file not found: {path}"))
    arr = np.load(path, mmap_mode="r")
    if arr.shape != (vocab_size, dim):
        raise vattfw.UserError(vattfw.Problem(
            f"tokenizer 'word_embedding': vectors file {path} has shape {list(arr.shape)}, but the spec expects "
            f"[vocab_size, dim] = [{vocab_size}, {dim}]"))
    return torch.from_numpy(np.array(arr, dtype=np.float32))


