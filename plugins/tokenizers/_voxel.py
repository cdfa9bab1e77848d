"""Implementation of the ``voxel`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import torch
from torch import nn

from ._configs import DropTokenConfig, PositionConfig
from ._position import DropToken, GridPositions, bad_shape, prod


class VoxelTokenizer(nn.Module):
    provides_agg = False

    def __init__(self, dim: int, patch: tuple[int, int, int], buckets: tuple[int, int, int], channels: int,
                 remainder: str, position: PositionConfig, drop_token: DropTokenConfig):
        super().__init__()
        self.dim, self.patch, self.channels, self.remainder = dim, tuple(patch), channels, remainder
        self.proj = nn.Conv3d(channels, dim, kernel_size=patch, stride=patch)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.pos = GridPositions(buckets, dim, position)
        self.drop_token = DropToken(drop_token, prod(buckets), "voxel")

    def grid(self, shape) -> tuple[int, int, int]:
        t, h, w = self.patch
        strict = self.remainder == "error"
        expected = (f"[B, T, H, W, {self.channels}] with T % {t} == H % {h} == W % {w} == 0" if strict else
                    f"[B, T, H, W, {self.channels}] with T >= {t}, H >= {h}, W >= {w}")
        if len(shape) != 5 or shape[-1] != self.channels:
            raise bad_shape("voxel", expected, shape)
        if strict and (shape[1] % t or shape[2] % h or shape[3] % w):
            raise bad_shape("voxel", expected, shape, f"frames not divisible by the patch {t}x{h}x{w}; "
                                                      f"remainder: drop would drop the rest")
        if shape[1] < t or shape[2] < h or shape[3] < w:
            raise bad_shape("voxel", expected, shape, f"smaller than one {t}x{h}x{w} voxel")
        return shape[1] // t, shape[2] // h, shape[3] // w

    def forward(self, video: torch.Tensor):
        grid = self.grid(tuple(video.shape))
        x = self.proj(video.permute(0, 4, 1, 2, 3))          # [B, d, t, h, w]; kernel = stride drops remainders
        x = x.flatten(2).transpose(1, 2)                     # [B, N, d], row-major (t, h, w)
        return self.drop_token(self.pos(x, grid)), None


