"""Text->video similarity over a pool of videos seen through several clips each (A.3.3, facts §8)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .metrics import retrieval_metrics

VARIANTS = ("embd", "cosine")


def similarity(text: torch.Tensor, video: torch.Tensor, variant: str = "embd") -> torch.Tensor:
    """[Q, d] text embeddings x [N, V, d] video clip embeddings -> [Q, N] similarities.

    ``embd`` (the paper): average the V clip embeddings of a video, L2-normalise, cosine.
    ``cosine`` (also reported by the released code): cosine with each clip, then average.
    """
    if video.dim() == 2:
        video = video[:, None]
    t = F.normalize(text.double(), dim=-1)
    if variant == "embd":
        return t @ F.normalize(video.double().mean(1), dim=-1).T
    if variant == "cosine":
        v = F.normalize(video.double(), dim=-1)
        return torch.einsum("qd,nvd->qnv", t, v).mean(-1)
    raise ValueError(f"unknown similarity variant {variant!r}; expected one of {VARIANTS}")


def text_to_video(text: torch.Tensor, video: torch.Tensor, gt: torch.Tensor | None = None,
                  variants: tuple[str, ...] = VARIANTS, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, dict[str, float]]:
    """R@K and median rank per variant; query i's ground truth is video ``gt[i]`` (default i)."""
    gt = torch.arange(len(text)) if gt is None else gt.long()
    return {v: retrieval_metrics(similarity(text, video, v), gt, ks) for v in variants}
