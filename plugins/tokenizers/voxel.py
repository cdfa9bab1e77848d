"""``voxel`` tokenizer (video): a linear projection of non-overlapping t x h x w x 3 voxels.

Input ``[B, T, H, W, 3]`` in [-1, 1] -> tokens ``[B, N, d]`` (N = T/t * H/h * W/w, row-major in
(t, h, w)), plus learned 8+14+14 positions and DropToken.  32x224x224 with 4x16x16 gives 8x14x14 =
1568 tokens.  Frames or pixels that do not fill a whole voxel at the end of an axis are dropped
(``remainder: drop``, as the released code's VALID convolution does, which the paper's Table 9
rows such as 32x200x200 with 5x16x16 voxels rely on: 6x12x12 tokens from the first 30 frames and
192 rows/columns); ``remainder: error`` refuses such inputs instead.  Parameters: ``proj`` (Conv3d, kernel = stride, Xavier-uniform, zero bias), ``pos.axis0..2``,
``pos.norm``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

import vattfw

from ._configs import DropTokenConfig, PositionConfig


class Config(vattfw.PluginConfig):
    patch: tuple[int, int, int] = Field((4, 16, 16), description="Voxel size t x h x w (kernel = stride).")
    buckets: tuple[int, int, int] = Field(
        (8, 14, 14), description="Positional buckets (temporal, vertical, horizontal): the table sizes. Another grid "
        "at run time (e.g. 8x20x20 at 320x320) resamples the tables; DropToken's count uses these.")
    channels: int = Field(3, ge=1, description="Colour channels (last input axis).")
    remainder: Literal["drop", "error"] = Field(
        "drop", description="Frames/pixels beyond the last whole voxel: drop them (the released code's VALID "
        "convolution; what Table 9's 32x200x200 / 5x16x16 rows need) or raise an error.")
    position: PositionConfig = Field(default_factory=PositionConfig, description="Positional tables.")
    drop_token: DropTokenConfig = Field(default_factory=DropTokenConfig, description="DropToken (training only).")


def build(config: Config, dim: int, **_) -> object:
    from ._voxel import VoxelTokenizer
    return VoxelTokenizer(dim, config.patch, config.buckets, config.channels, config.remainder, config.position,
                          config.drop_token)
