"""``fac`` head: fine-and-coarse projections into the common spaces S_va and S_vt.

video -> Linear(d_va, no bias) -> BN -> ReLU -> Linear(d_va, no bias) -> BN = ``video_va``;
then ReLU -> Linear(d_vt, no bias) -> BN = ``video_vt``;  audio -> Linear(d_va) = ``audio_va``
(``audio_proj: mlp``: the video side's two layers, whose BatchNorm also sees clips without audio);
text -> Linear(d_vt) = ``text_vt`` (applied to every candidate, [B, L, d_vt]).
BatchNorm (eps 1e-5, PyTorch momentum 0.1 = Keras 0.9) normalises over the batch tensor it is
given; under SPMD that tensor is the global batch, so its statistics are global (the released code's
cross-replica BN) with no extra code.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

import vattfw


class Config(vattfw.PluginConfig):
    d_va: int = Field(512, ge=1, description="Width of the video-audio space S_va.")
    d_vt: int = Field(256, ge=1, description="Width of the video-text space S_vt.")
    bn_eps: float = Field(1e-5, gt=0, description="BatchNorm epsilon.")
    bn_momentum: float = Field(0.1, gt=0, le=1, description="BatchNorm momentum (PyTorch convention; Keras 0.9).")
    audio_proj: Literal["linear", "mlp"] = Field(
        "linear", description="audio -> S_va: linear = one Linear(d_va) (the paper and the released code); mlp = "
        "the video side's shape, Linear(d_va) -> BN -> ReLU -> Linear(d_va) -> BN (a non-linear head, so that the "
        "pooled audio feature need not be the contrastive embedding itself; measured in docs/experiments.md, issue 16).")


def build(config: Config, dims: dict[str, int], **_) -> object:
    from ._fac import FACHead
    return FACHead(dims, config.d_va, config.d_vt, config.bn_eps, config.bn_momentum, config.audio_proj)
