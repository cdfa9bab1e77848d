"""Implementation of the ``fac`` plugin (torch; imported only when it is built)."""
from __future__ import annotations

import torch
from torch import nn

import vattfw

from vattfw_plugins.backbones._encoder import dense




class FACHead(nn.Module):
    def __init__(self, dims: dict[str, int], d_va: int, d_vt: int, bn_eps: float, bn_momentum: float,
                 audio_proj: str = "linear"):
        super().__init__()
        missing = [m for m in ("video",) if m not in dims]
        if missing:
            raise vattfw.UserError(vattfw.Problem("head 'fac': needs a video backbone (FAC projects from video)"))
        def bn(width: int) -> nn.BatchNorm1d:
            return nn.BatchNorm1d(width, eps=bn_eps, momentum=bn_momentum)
        self.video_va = nn.Sequential(dense(dims["video"], d_va, False), bn(d_va), nn.ReLU(),
                                      dense(d_va, d_va, False), bn(d_va))
        self.video_vt = nn.Sequential(nn.ReLU(), dense(d_va, d_vt, False), bn(d_vt))
        if "audio" in dims and audio_proj == "mlp":
            self.audio_va = nn.Sequential(dense(dims["audio"], d_va, False), bn(d_va), nn.ReLU(),
                                          dense(d_va, d_va, False), bn(d_va))
        elif "audio" in dims:  # the paper's single linear map (parameter names unchanged for old checkpoints)
            self.audio_va = dense(dims["audio"], d_va)
        if "text" in dims:
            self.text_vt = dense(dims["text"], d_vt)

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


