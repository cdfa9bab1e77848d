"""The one seam between the evaluators and the data loader.

An evaluator names its own data (a list of datasource specs); :func:`loader` derives a spec
whose ``data.sources`` (training split) or ``data.eval_sources`` (eval views: clips x crops,
one ordered pass, padding rows marked ``valid = 0``) are those sources, and asks
:func:`vattfw.data.build_loader` for it.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch


def derived_spec(spec: Any, sources: Sequence[Any], *, clips: int = 1, crops: int = 1,
                 video: dict | None = None, audio: dict | None = None, num_classes: int | None = None,
                 train: bool = False) -> Any:
    data = spec.data
    update: dict[str, Any] = {}
    if video:
        update["video"] = data.video.model_copy(update=video)
    if audio:
        update["audio"] = data.audio.model_copy(update=audio)
    if num_classes is not None:
        update["num_classes"] = num_classes
    if train:
        update["sources"] = list(sources)
    else:
        update["eval_sources"] = list(sources)
        views: dict[str, Any] = {"clips": clips, "crops": crops}
        if video and data.eval.video is not None:
            views["video"] = data.eval.video.model_copy(update=video)
        update["eval"] = data.eval.model_copy(update=views)
    return spec.model_copy(update={"data": data.model_copy(update=update)})


def loader(spec: Any, sources: Sequence[Any], host: Any = None, *, batch_size: int,
           **kw: Any) -> Iterable[dict[str, torch.Tensor]]:
    """Batches of ``batch_size`` samples (each ``clips x crops`` rows in eval) from ``sources``."""
    import vattfw
    from ..data import make_loader
    split = "train" if kw.get("train") else "eval"
    derived = derived_spec(spec, sources, **kw)
    built = [vattfw.build("datasource", ref, host) for ref in sources]
    # Loader workers pickle the data section; the datasource specs in it are instances of
    # classes made at run time (plugin("datasource")), which pickle cannot find by name.
    data = derived.data.model_copy(update={"sources": [], "eval_sources": []})
    return make_loader(built, data, batch_size, seed=spec.run.seed, split=split)
