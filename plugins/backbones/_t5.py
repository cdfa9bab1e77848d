"""Implementation of the ``t5`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ._config import EncoderConfig
from ._encoder import MLP, Attention, agg_token, prepend


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def relative_bucket(query_minus_key: torch.Tensor, buckets: int, max_distance: int) -> torch.Tensor:
    half = buckets // 2
    exact = half // 2
    offset = (query_minus_key < 0).long() * half
    m = query_minus_key.abs()
    far = exact + (torch.log(m.clamp(min=1).float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    far = far.clamp(max=half - 1)
    return offset + torch.where(m < exact, m, far)


class T5Block(nn.Module):
    def __init__(self, width: int, mlp_dim: int, heads: int, cfg: EncoderConfig, ffn_norm: str):
        super().__init__()
        self.ln1 = RMSNorm(width, cfg.eps)
        self.attn = Attention(width, heads, cfg.attention_dropout, bias=False, scaled=False)
        self.ln2 = RMSNorm(width, cfg.eps) if ffn_norm == "rms" else nn.LayerNorm(width, eps=cfg.eps)
        self.mlp = MLP(width, mlp_dim, cfg.dropout, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, bias):
        x = x + self.drop(self.attn(self.ln1(x), bias))
        return x + self.drop(self.mlp(self.ln2(x)))


class T5Backbone(nn.Module):
    def __init__(self, cfg: EncoderConfig, buckets: int, max_distance: int, ffn_norm: str, agg: bool):
        super().__init__()
        depth, self.width, mlp_dim, heads = cfg.shape()
        self.dim, self.has_agg = self.width, agg
        self.buckets, self.max_distance = buckets, max_distance
        self.relative = nn.Embedding(buckets, heads)
        nn.init.uniform_(self.relative.weight, -0.05, 0.05)
        self.input_drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(T5Block(self.width, mlp_dim, heads, cfg, ffn_norm) for _ in range(depth))
        self.norm = RMSNorm(self.width, cfg.eps)
        self.drop = nn.Dropout(cfg.dropout)
        if agg:
            self.agg = agg_token(self.width)

    def position_bias(self, length: int, device) -> torch.Tensor:
        pos = torch.arange(length, device=device)
        bucket = relative_bucket(pos[:, None] - pos[None, :], self.buckets, self.max_distance)
        return self.relative(bucket).permute(2, 0, 1).unsqueeze(0)   # [1, H, T, T]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        if self.has_agg:
            x, mask = prepend(self.agg, x, mask)
        bias = self.position_bias(x.shape[1], x.device).to(x.dtype)
        if mask is not None:
            bias = bias + ((1.0 - mask) * -1e9)[:, None, None, :].to(x.dtype)
        x = self.input_drop(x)
        for layer in self.layers:
            x = layer(x, bias)
        seq = self.drop(self.norm(x))
        return seq[:, 0], seq


