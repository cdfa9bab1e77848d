"""Pre-LN Transformer encoder written with explicit ``[B, H, T, hd]`` attention.

Module names (the engine shards them over the ``tensor`` mesh axis):
``layers.<i>.attn.q|k|v`` (column-parallel: split by output), ``layers.<i>.attn.o`` (row-parallel:
split by input), ``layers.<i>.mlp.fc1`` (column), ``layers.<i>.mlp.fc2`` (row); norms are
``layers.<i>.ln1``, ``layers.<i>.ln2`` and ``norm`` (final).  nn.MultiheadAttention is avoided on
purpose: its ``[T, B*H, hd]`` layout loses batch sharding under SPMD and is slower on XLA/CPU.
"""
from __future__ import annotations

import torch
from torch import nn

from ._config import EncoderConfig

def dense(d_in: int, d_out: int, bias: bool = True) -> nn.Linear:
    """Keras Dense defaults: Xavier-uniform kernel, zero bias."""
    layer = nn.Linear(d_in, d_out, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, bias: bool = True, scaled: bool = True):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.scale = self.head_dim ** -0.5 if scaled else 1.0
        self.q, self.k, self.v = (dense(width, width, bias) for _ in range(3))
        self.o = dense(width, width, bias)
        self.dropout_p = dropout  # on the attention probabilities, inside SDPA

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        # -1, not self.heads: under tensor parallelism a process holds only its own heads
        return x.view(b, t, -1, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        # softmax(q k^T * scale + bias) with dropout on the probabilities, then @ v: one SDPA call,
        # so eager PyTorch picks its fused kernel (flash / memory-efficient on CUDA, flash on the
        # CPU) and XLA, which has none, lowers it to the same matmul-softmax-matmul graph.
        out = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout_p if self.training else 0.0, scale=self.scale)
        return self.o(out.transpose(1, 2).flatten(2))


class MLP(nn.Module):
    def __init__(self, width: int, mlp_dim: int, dropout: float, bias: bool = True):
        super().__init__()
        self.fc1, self.fc2 = dense(width, mlp_dim, bias), dense(mlp_dim, width, bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(nn.functional.gelu(self.fc1(x))))  # exact (erf) GELU, as Keras


class Block(nn.Module):
    def __init__(self, width: int, mlp_dim: int, heads: int, cfg: EncoderConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=cfg.eps)
        self.attn = Attention(width, heads, cfg.attention_dropout)
        self.ln2 = nn.LayerNorm(width, eps=cfg.eps)
        self.mlp = MLP(width, mlp_dim, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), bias))
        return x + self.drop(self.mlp(self.ln2(x)))


class Encoder(nn.Module):
    """Layers, then the final LayerNorm and dropout.  ``mask`` [B, T] (1 = keep) becomes an
    additive (1 - m) * -1e9 bias, as the released code."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        depth, self.width, mlp_dim, heads = cfg.shape()
        self.layers = nn.ModuleList(Block(self.width, mlp_dim, heads, cfg) for _ in range(depth))
        self.norm = nn.LayerNorm(self.width, eps=cfg.eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bias = None if mask is None else ((1.0 - mask) * -1e9)[:, None, None, :].to(x.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        return self.drop(self.norm(x))


def agg_token(width: int) -> nn.Parameter:
    """A learnable [width] vector, Keras glorot-normal (std = sqrt(1/width), truncated at 2 std)."""
    std = width ** -0.5
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(width), std=std, a=-2 * std, b=2 * std))


def prepend(agg: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None):
    x = torch.cat([agg.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
    if mask is not None:
        mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
    return x, mask
