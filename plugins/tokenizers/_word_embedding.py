"""Implementation of the ``word_embedding`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import vattfw

from .word_embedding import Config
from ._position import GridPositions, bad_shape


class WordEmbeddingTokenizer(nn.Module):
    def __init__(self, cfg: Config, dim: int):
        super().__init__()
        self.cfg, self.dim = cfg, dim
        self.provides_agg = cfg.agg_token
        self.table = nn.Embedding(cfg.vocab_size, cfg.dim)
        if cfg.vectors is None:
            nn.init.uniform_(self.table.weight, -0.05, 0.05)
        else:
            self.table.weight.data.copy_(load_vectors(cfg))
        trainable = cfg.trainable if cfg.trainable is not None else cfg.vectors is None
        self.table.weight.requires_grad_(trainable)
        if cfg.agg_token:
            std = (2.0 / (1 + cfg.dim)) ** 0.5  # Keras glorot-normal of a [1, dim] weight
            self.agg = nn.Parameter(nn.init.trunc_normal_(torch.empty(cfg.dim), std=std, a=-2 * std, b=2 * std))
        self.proj = nn.Linear(cfg.dim, dim, bias=False)
        nn.init.xavier_uniform_(self.proj.weight)
        if cfg.position == "learned":
            self.pos = GridPositions((cfg.max_words,), dim, cfg.position_config)

    def forward(self, ids: torch.Tensor):
        if ids.dim() != 2 or ids.shape[1] > self.cfg.max_words:
            raise bad_shape("word_embedding", f"[N, W] word ids with W <= {self.cfg.max_words}", tuple(ids.shape),
                            "too many words" if ids.dim() == 2 else "")
        mask = (ids != 0).to(torch.float32)
        x = self.table(ids)
        if self.cfg.agg_token:
            x = torch.cat([self.agg.expand(ids.shape[0], 1, -1).to(x.dtype), x], dim=1)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        x = nn.functional.gelu(self.proj(x))
        if self.cfg.position == "learned":
            start = 1 if self.cfg.agg_token else 0
            x = torch.cat([x[:, :start], self.pos(x[:, start:], (ids.shape[1],))], dim=1)
        return x, mask


def load_vectors(cfg: Config) -> torch.Tensor:
    import numpy as np
    path = Path(cfg.vectors)
    if not path.is_file():
        raise vattfw.UserError(vattfw.Problem(f"tokenizer 'word_embedding': vectors file not found: {path}"))
    arr = np.load(path, mmap_mode="r")
    if arr.shape != (cfg.vocab_size, cfg.dim):
        raise vattfw.UserError(vattfw.Problem(
            f"tokenizer 'word_embedding': vectors file {path} has shape {list(arr.shape)}, but the spec expects "
            f"[vocab_size, dim] = [{cfg.vocab_size}, {cfg.dim}]"))
    return torch.from_numpy(np.array(arr, dtype=np.float32))


