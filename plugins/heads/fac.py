"""``fac`` head: fine-and-coarse projections into the common spaces S_va and S_vt.

video -> Linear(d_va, no bias) -> BN -> ReLU -> Linear(d_va, no bias) -> BN = ``video_va``;
then ReLU -> Linear(d_vt, no bias) -> BN = ``video_vt``;  audio -> Linear(d_va) = ``audio_va``;
text -> Linear(d_vt) = ``text_vt`` (applied to every candidate, [B, L, d_vt]).
BatchNorm (eps 1e-5, PyTorch momentum 0.1 = Keras 0.9) normalises over the batch tensor it is
given; under SPMD that tensor is the global batch, so its statistics are global (the released code's
cross-replica BN) with no extra code.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

import vattfw
from vattfw_plugins.backbones._encoder import dense


class Config(vattfw.PluginConfig):
    d_va: int = Field(512, ge=1, description="Width of the video-audio space S_va.")
    d_vt: int = Field(256, ge=1, description="Width of the video-text space S_vt.")
    bn_eps: float = Field(1e-5, gt=0, description="BatchNorm epsilon.")
    bn_momentum: float = Field(0.1, gt=0, le=1, description="BatchNorm momentum (PyTorch convention; Keras 0.9).")


def bn(width: int, cfg: Config) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(width, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


class FACHead(nn.Module):
    def __init__(self, cfg: Config, dims: dict[str, int]):
        super().__init__()
        missing = [m for m in ("video",) if m not in dims]
        if missing:
            raise vattfw.UserError(vattfw.Problem("head 'fac': needs a video backbone (FAC projects from video)"))
        self.video_va = nn.Sequential(dense(dims["video"], cfg.d_va, False), bn(cfg.d_va, cfg), nn.ReLU(),
                                      dense(cfg.d_va, cfg.d_va, False), bn(cfg.d_va, cfg))
        self.video_vt = nn.Sequential(nn.ReLU(), dense(cfg.d_va, cfg.d_vt, False), bn(cfg.d_vt, cfg))
        if "audio" in dims:
            self.audio_va = dense(dims["audio"], cfg.d_va)
        if "text" in dims:
            self.text_vt = dense(dims["text"], cfg.d_vt)

    def forward(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        if "video_pooled" in feats:
            out["video_va"] = self.video_va(feats["video_pooled"])
            out["video_vt"] = self.video_vt(out["video_va"])
        if "audio_pooled" in feats and hasattr(self, "audio_va"):
            out["audio_va"] = self.audio_va(feats["audio_pooled"])
        if "text_pooled" in feats and hasattr(self, "text_vt"):
            out["text_vt"] = self.text_vt(feats["text_pooled"])
        return out


def build(config: Config, dims: dict[str, int], **_) -> FACHead:
    return FACHead(config, dims)
