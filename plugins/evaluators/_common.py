"""Pieces every built-in evaluator shares: config fields and label checks."""
from __future__ import annotations

from pydantic import Field

import vattfw
from vattfw import Problem, UserError, plugin

Sources = list[plugin("datasource")]  # type: ignore[valid-type]


def sources_field(what: str):
    return Field(default_factory=list, description=f"Datasource specs of the {what} (e.g. "
                                                   "[{name: webdataset, urls: 'data/test-{000..003}.tar'}]).")


class EvaluatorConfig(vattfw.PluginConfig):
    tag: str | None = Field(None, description="Prefix of the metric names (default: the evaluator's name, "
                                              "plus modality/classifier where several could coexist).")
    batch_size: int = Field(8, ge=1, description="Videos per forward pass during feature extraction.")


def need_sources(sources: list, field: str, where: str) -> None:
    if not sources:
        raise UserError(Problem(f"{where}: {field} names no datasource; give the split's shards, e.g. "
                                f"{field}: [{{name: webdataset, urls: ...}}]"))


def class_labels(labels, num_classes: int, where: str, sample=None):
    """int64 labels [N]; a missing label (-1) or one >= num_classes names the sample (its index
    in the split, from the loader's ``sample`` field when given)."""
    import torch
    labels = labels.long()
    bad = ((labels < 0) | (labels >= num_classes)).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        i = int(sample[i]) if sample is not None else i
        what = "has no label (-1)" if int(labels[bad[0]]) < 0 else f"has label {int(labels[bad[0]])}"
        raise UserError(Problem(f"{where}: sample {i} {what}, expected 0..{num_classes - 1} "
                                f"({len(bad)} of {len(labels)} samples out of range; set num_classes or "
                                f"fix the data)"))
    return labels.to(torch.int64)
