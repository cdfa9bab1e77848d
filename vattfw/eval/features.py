"""Feature extraction from a frozen model, following the model contract
(``forward(batch) -> {video_pooled, audio_pooled, text_pooled, video_vt, text_vt, ...}``).

Eval batches carry several views of each video: ``video`` [B, V, T, H, W, 3] and
``audio`` [B, V, S] (V = clips x crops); :func:`forward_views` folds the views into the
batch axis for the model and unfolds its outputs to [B, V, d].
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import torch

from ..errors import Problem, UserError

# Rank of one clip's tensor per modality (without batch and view axes).
CLIP_RANK = {"video": 4, "audio": 1, "text": 2}


def views_of(batch: Mapping[str, torch.Tensor], modality: str) -> int:
    """V for a [B, V, ...] tensor, 1 for a [B, ...] tensor."""
    x = batch[modality]
    extra = x.dim() - 1 - CLIP_RANK[modality]
    if extra not in (0, 1):
        raise UserError(Problem(f"eval batch field {modality!r}: expected [B, ...] or [B, V, ...] with "
                                f"{CLIP_RANK[modality]} clip axes, got shape {list(x.shape)}"))
    return x.shape[1] if extra else 1


def require(batch: Mapping[str, torch.Tensor], fields: Sequence[str], where: str) -> None:
    """An eval split that lacks a needed modality (or whose mask says every clip lacks it)."""
    for f in fields:
        if f not in batch:
            have = ", ".join(sorted(k for k in batch if k in CLIP_RANK or k in ("label", "labels")))
            raise UserError(Problem(f"{where}: the eval data has no {f!r} (it has: {have or 'nothing usable'})"))
        mask = batch.get(f"{f}_mask")
        if mask is not None and f in ("audio", "text") and not bool((mask > 0).any()):
            raise UserError(Problem(f"{where}: the eval data has no {f} (every clip has {f}_mask = 0)"))


@torch.no_grad()
def forward_views(model: torch.nn.Module, batch: Mapping[str, torch.Tensor], modality: str,
                  outputs: Sequence[str], where: str, chunk: int = 0) -> dict[str, torch.Tensor]:
    """Run ``model`` on the views of one modality; return each output as [B, V, d]."""
    x = batch[modality]
    v = views_of(batch, modality)
    lead = 2 if x.dim() - 1 > CLIP_RANK[modality] else 1
    flat = x.reshape(x.shape[0] * v, *x.shape[lead:])
    pieces = [flat] if not chunk else list(flat.split(chunk))
    got: dict[str, list[torch.Tensor]] = {k: [] for k in outputs}
    for piece in pieces:
        inputs = {modality: piece}
        if modality in ("audio", "text"):
            inputs[f"{modality}_mask"] = torch.ones(len(piece))
        out = model(inputs)
        for k in outputs:
            if k not in out:
                raise UserError(Problem(f"{where}: the model gives no {k!r} for {modality} input (it gives: "
                                        f"{', '.join(sorted(out)) or 'nothing'}); does the spec's model section "
                                        f"configure a {modality} backbone{' and a head' if '_vt' in k or '_va' in k else ''}?"))
            got[k].append(out[k].detach().float().cpu())
    return {k: torch.cat(vals).reshape(x.shape[0], v, *vals[0].shape[1:]) for k, vals in got.items()}


def collect(model: torch.nn.Module, batches: Iterable[Mapping[str, torch.Tensor]],
            plan: Mapping[str, Sequence[str]], where: str,
            keep: Sequence[str] = ("label", "labels")) -> dict[str, torch.Tensor]:
    """For each ``modality -> outputs`` of ``plan``, run the frozen model over every batch and
    concatenate the outputs ([N, V, ...]); also concatenate the batch fields ``keep`` (and the
    ``*_mask`` of the planned modalities).  Rows marked invalid by a ``valid`` field (padding
    of a last, short batch) are dropped."""
    was_training = model.training
    model.eval()
    acc: dict[str, list[torch.Tensor]] = {}
    fields = list(keep) + [f"{m}_mask" for m in plan]
    try:
        for batch in batches:
            require(batch, list(plan), where)
            rows = batch["valid"] > 0 if "valid" in batch else slice(None)
            for modality, outputs in plan.items():
                for k, val in forward_views(model, batch, modality, outputs, where).items():
                    acc.setdefault(k, []).append(val[rows])
            for k in fields:
                if k in batch:
                    acc.setdefault(k, []).append(batch[k][rows])
    finally:
        model.train(was_training)
    if not acc:
        raise UserError(Problem(f"{where}: the eval data gave no batches"))
    return {k: torch.cat(v) for k, v in acc.items()}
