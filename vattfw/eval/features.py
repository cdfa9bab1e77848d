"""Feature extraction from a frozen model, following the model contract
(``forward(batch) -> {video_pooled, audio_pooled, text_pooled, video_vt, text_vt, ...}``).

Eval batches from the loader (``split="eval"``) hold ``views`` = clips x crops consecutive rows
per sample, with ``valid`` (0 = padding of the last batch, or a sample that could not be read)
and ``sample`` (the sample's index in the split) per row.  :func:`collect` runs the model on
every row and regroups its outputs per sample: video/audio outputs ``[N, views, ...]``, text
outputs ``[N, ...]`` (a sample's text is the same in all its views, so it is encoded once).
"""
from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Sequence

import torch

from ..errors import Problem, UserError

MODALITIES = ("video", "audio", "text")
SPACES = ("va", "vt")  # the common spaces of the fac head: video-audio and video-text
LOGITS = "logits"  # the output of the built-in linear head (and of the fine-tuning evaluators' heads)


def pooled(modality: str) -> str:
    """``<modality>_pooled``: the name of the backbone's pooled feature in the model's outputs."""
    return f"{modality}_pooled"


def projected(modality: str, space: str) -> str:
    """``<modality>_<space>``: the name of a modality's embedding in a common space (``va``, ``vt``)."""
    if space not in SPACES:
        raise ValueError(f"unknown common space {space!r}; expected one of {SPACES}")
    return f"{modality}_{space}"


@torch.no_grad()
def forward(model: torch.nn.Module, modality: str, x: torch.Tensor, outputs: Sequence[str],
            where: str) -> dict[str, torch.Tensor]:
    """``model({modality: x})[k]`` for each ``k`` in ``outputs``: ``x`` is moved to the model's
    device (split over the mesh by ``model.place_batch`` when the model has one) and run there;
    the outputs come back to the CPU, as float32."""
    place = getattr(model, "place_batch", None)  # set by device_model under SPMD: rows split over the mesh
    held = next(itertools.chain(model.parameters(), model.buffers()), None)  # (a feature module may hold buffers only)
    out = model({modality: place(x) if place else x.to(held.device) if held is not None else x})
    missing = [k for k in outputs if k not in out]
    if missing:
        head = " and a head that gives it" if any(k.endswith(("_va", "_vt")) or k == "logits" for k in missing) else ""
        raise UserError(Problem(f"{where}: the model gives no {', '.join(map(repr, missing))} for {modality} input "
                                f"(it gives: {', '.join(sorted(out)) or 'nothing'}); does the spec's model section "
                                f"configure a {modality} backbone{head}?"))
    return {k: out[k].detach().float().cpu() for k in outputs}


def collect(model: torch.nn.Module, batches: Iterable[Mapping[str, torch.Tensor]],
            plan: Mapping[str, Sequence[str]], views: int, where: str,
            keep: Sequence[str] = ("label", "labels")) -> dict[str, torch.Tensor]:
    """Run the frozen ``model`` over every batch for each ``modality -> outputs`` of ``plan``;
    return the outputs regrouped per sample (see the module docstring), the per-sample batch
    fields ``keep``, ``sample`` and the planned modalities' ``*_mask``.  Invalid samples are dropped."""
    was_training = model.training
    model.eval()
    acc: dict[str, list[torch.Tensor]] = {}
    fields = list(dict.fromkeys([*keep, "sample", "valid", *(f"{m}_mask" for m in plan)]))
    try:
        for batch in batches:
            rows = len(next(iter(batch.values())))
            if rows % views:
                raise UserError(Problem(f"{where}: an eval batch of {rows} rows is not a whole number of "
                                        f"{views} views per sample"))
            for modality, outputs in plan.items():
                if modality not in batch:
                    have = ", ".join(m for m in MODALITIES if m in batch) or "none"
                    raise UserError(Problem(f"{where}: the eval data has no {modality!r} (it has: {have})"))
                x = batch[modality][::views] if modality == "text" else batch[modality]
                for k, val in forward(model, modality, x, outputs, where).items():
                    acc.setdefault(k, []).append(val)
            for k in fields:
                if k in batch:
                    acc.setdefault(k, []).append(batch[k][::views])
    finally:
        model.train(was_training)
    if not acc:
        raise UserError(Problem(f"{where}: the eval data gave no batches"))
    got = {k: torch.cat(v) for k, v in acc.items()}
    n = len(got["valid"]) if "valid" in got else len(next(iter(got.values())))
    for modality, outputs in plan.items():
        if modality != "text":
            for k in outputs:
                got[k] = got[k].reshape(n, views, *got[k].shape[1:])
    ok = got.pop("valid") > 0 if "valid" in got else torch.ones(n, dtype=torch.bool)
    got = {k: v[ok] for k, v in got.items()}
    if not len(ok) or not bool(ok.any()):
        raise UserError(Problem(f"{where}: the eval data has no readable sample"))
    for modality in plan:
        mask = got.get(f"{modality}_mask")
        if mask is not None and not bool((mask > 0).any()):
            raise UserError(Problem(f"{where}: the eval data has no {modality} ({modality}_mask is 0 for all "
                                    f"{len(mask)} samples)"))
    return got
