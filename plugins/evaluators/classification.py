"""`classification`: tests the model's own classifier head, as it is (no training), with the
paper's protocols: a model fine-tuned by `vattfw run` (a spec with a ``linear`` head, optionally
started from pretraining with ``model.init``), evaluated during the run (``eval.every_steps``) and
at its end, or later with `vattfw eval`.

Single-label (A.2.5, video): ``clips`` x ``crops`` views per sample, scores averaged, top-k
accuracy against ``label``.  Multi-label (A.3, audio): views' logits averaged, sigmoid, then mAP,
AUC and d' against the multi-hot ``labels``.  The head's modality, class count and output name
come from the spec's ``model.heads.<head>``; the test data is read with the spec's ``data``
settings unless ``video`` / ``audio`` override them.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from vattfw import Problem, UserError

from ._common import EvaluatorConfig, Sources, need_sources, sources_field


class Config(EvaluatorConfig):
    test: Sources = sources_field("test split")
    head: str = Field("classifier", description="Name of the spec's classifier head (model.heads.<head>): its "
                                                "modality, num_classes and output are used.")
    multilabel: bool = Field(False, description="false: single-label top-k accuracy on `label` (video, A.2.5); "
                                                "true: mAP / AUC / d' on multi-hot `labels` (audio, A.3).")
    clips: int = Field(4, ge=1, description="Uniformly spaced test clips per sample (A.2.5: 4).")
    crops: int = Field(3, ge=1, le=3, description="Spatial test crops per clip: 3 (A.2.5) or 1; audio uses 1.")
    top_k: list[int] = Field(default_factory=lambda: [1, 5], description="Single-label: top-k accuracy for each k.")
    video: dict[str, Any] = Field(default_factory=dict, description="Overrides of data.video for the test data, "
                                                                    "e.g. {size: 320, fps: 25, stride: 2}.")
    audio: dict[str, Any] = Field(default_factory=dict, description="Overrides of data.audio for the test data.")


class Classification:
    def __init__(self, config: Config):
        self.config = config
        self.prefix = config.tag or "classification"

    def head(self, spec) -> Any:
        ref = spec.model.heads.get(self.config.head)
        cfg = getattr(ref, "config", None)
        if cfg is None or not all(hasattr(cfg, k) for k in ("num_classes", "modality", "output")):
            have = ", ".join(f"{k} ({r.name})" for k, r in spec.model.heads.items()) or "none"
            raise UserError(Problem(f"evaluator {self.prefix}: model.heads has no classifier head "
                                    f"{self.config.head!r} with num_classes, modality and output (heads: {have}); "
                                    f"set `head` to the spec's linear head", "eval.evaluators"))
        return cfg

    def run(self, model, spec, host=None) -> dict[str, float]:
        import torch
        from vattfw.eval.data import loader
        from vattfw.eval.features import collect
        from vattfw.eval.metrics import multilabel_metrics, topk_accuracy
        from ._common import class_labels
        cfg, where = self.config, f"evaluator {self.prefix}"
        head = self.head(spec)
        need_sources(cfg.test, "test", where)
        crops = cfg.crops if head.modality == "video" else 1
        keep = ("labels",) if cfg.multilabel else ("label",)
        batches = loader(spec, cfg.test, host, batch_size=cfg.batch_size, clips=cfg.clips, crops=crops,
                         video=cfg.video, audio=cfg.audio, num_classes=head.num_classes)
        got = collect(model, batches, {head.modality: [head.output]}, cfg.clips * crops, f"{where} (test)", keep=keep)
        scores = got[head.output].mean(1)
        if cfg.multilabel:
            return {f"{self.prefix}/{k}": v for k, v in multilabel_metrics(torch.sigmoid(scores),
                                                                         got["labels"]).items()}
        labels = class_labels(got["label"], head.num_classes, f"{where} (test split)", got.get("sample"))
        return {f"{self.prefix}/top{k}": topk_accuracy(scores, labels, k) for k in cfg.top_k}


def build(config: Config, **_: object) -> Classification:
    return Classification(config)
