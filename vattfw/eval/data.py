"""The one seam between the evaluators and the data loader.

An evaluator names its own data (a list of datasource specs); :func:`loader` derives a spec
whose ``data.eval_sources`` are those sources, with the view layout (clips x crops) and
batch size the evaluator needs, and asks :func:`vattfw.data.build_loader` for it.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch


def derived_spec(spec: Any, sources: Sequence[Any], *, batch_size: int, clips: int = 1, crops: int = 1,
                 video: dict | None = None, num_classes: int | None = None, train: bool = False) -> Any:
    """A copy of ``spec`` that reads ``sources``: as the training split (``train``: augmented,
    shuffled, endless) or as eval views (``clips`` x ``crops``, one pass, in order)."""
    data = spec.data
    update: dict[str, Any] = {}
    if video:
        update["video"] = data.video.model_copy(update=video)
    if num_classes is not None:
        update["num_classes"] = num_classes
    if train:
        update["sources"] = list(sources)
    else:
        update["eval_sources"] = list(sources)
        views = {"clips": clips, "crops": crops}
        if video:
            base = data.eval.video or data.video
            views["video"] = base.model_copy(update=video)
        update["eval"] = data.eval.model_copy(update=views)
    train_section = spec.train.model_copy(update={"global_batch_size": batch_size, "grad_accumulation": 1})
    return spec.model_copy(update={"data": data.model_copy(update=update), "train": train_section})


def loader(spec: Any, sources: Sequence[Any], host: Any = None, **kw: Any) -> Iterable[dict[str, torch.Tensor]]:
    from ..data import build_loader
    split = "train" if kw.get("train") else "eval"
    return build_loader(derived_spec(spec, sources, **kw), host=host, split=split)
