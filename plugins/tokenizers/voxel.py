"""``voxel`` tokenizer (video): a linear projection of non-overlapping t x h x w x 3 voxels.

Input ``[B, T, H, W, 3]`` in [-1, 1] -> tokens ``[B, N, d]`` (N = T/t * H/h * W/w, row-major in
(t, h, w)), plus learned 8+14+14 positions and DropToken.  32x224x224 with 4x16x16 gives 8x14x14 =
1568 tokens.  Parameters: ``proj`` (Conv3d, kernel = stride, Xavier-uniform, zero bias), ``pos.axis0..2``,
``pos.norm``.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

import vattfw

from ._position import DropToken, DropTokenConfig, GridPositions, PositionConfig, bad_shape, prod


class Config(vattfw.PluginConfig):
    patch: tuple[int, int, int] = Field((4, 16, 16), description="Voxel size t x h x w (kernel = stride).")
    buckets: tuple[int, int, int] = Field(
        (8, 14, 14), description="Positional buckets (temporal, vertical, horizontal): the table sizes. Another grid "
        "at run time (e.g. 8x20x20 at 320x320) resamples the tables; DropToken's count uses these.")
    channels: int = Field(3, ge=1, description="Colour channels (last input axis).")
    position: PositionConfig = Field(default_factory=PositionConfig, description="Positional tables.")
    drop_token: DropTokenConfig = Field(default_factory=DropTokenConfig, description="DropToken (training only).")


class VoxelTokenizer(nn.Module):
    provides_agg = False

    def __init__(self, cfg: Config, dim: int):
        super().__init__()
        self.cfg, self.dim = cfg, dim
        self.proj = nn.Conv3d(cfg.channels, dim, kernel_size=cfg.patch, stride=cfg.patch)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.pos = GridPositions(cfg.buckets, dim, cfg.position)
        self.drop_token = DropToken(cfg.drop_token, prod(cfg.buckets), "voxel")

    def grid(self, shape) -> tuple[int, int, int]:
        t, h, w = self.cfg.patch
        expected = f"[B, T, H, W, {self.cfg.channels}] with T % {t} == H % {h} == W % {w} == 0"
        if len(shape) != 5 or shape[-1] != self.cfg.channels:
            raise bad_shape("voxel", expected, shape)
        if shape[1] % t or shape[2] % h or shape[3] % w:
            raise bad_shape("voxel", expected, shape, f"frames not divisible by the patch {t}x{h}x{w}")
        return shape[1] // t, shape[2] // h, shape[3] // w

    def forward(self, video: torch.Tensor):
        grid = self.grid(tuple(video.shape))
        x = self.proj(video.permute(0, 4, 1, 2, 3))          # [B, d, t, h, w]
        x = x.flatten(2).transpose(1, 2)                     # [B, N, d], row-major (t, h, w)
        return self.drop_token(self.pos(x, grid)), None


def build(config: Config, dim: int, **_) -> VoxelTokenizer:
    return VoxelTokenizer(config, dim)
