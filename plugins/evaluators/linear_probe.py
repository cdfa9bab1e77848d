"""`linear_probe`: a linear classifier on the frozen backbone's pooled (aggregation-token)
features (A.3.2, A.4).  Training features come from one clip per video, test predictions
are averaged over ``clips`` uniformly spaced clips (4, as the released code); the classifier
is a plugin (`lrc` or `svm`).  Metrics: top-1 and top-5 accuracy (torchmetrics)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from vattfw import Problem, UserError, plugin

from ._common import EvaluatorConfig, Sources, class_labels, need_sources, sources_field


class Config(EvaluatorConfig):
    modality: Literal["video", "audio"] = Field("video", description="Backbone whose pooled features are probed.")
    classifier: plugin("classifier") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "lrc"}, description="Classifier plugin: lrc (A.3.2) or svm (A.4).")
    train: Sources = sources_field("training split")
    test: Sources = sources_field("test split")
    num_classes: int = Field(0, ge=0, description="Number of classes; 0 = the largest label seen + 1.")
    clips: int = Field(4, ge=1, description="Uniformly spaced test clips per video whose predictions are averaged.")
    top_k: list[int] = Field(default_factory=lambda: [1, 5], description="Accuracies reported: top-k for each k.")


class LinearProbe:
    def __init__(self, config: Config):
        self.config = config
        name = config.classifier.name or "classifier"
        self.prefix = config.tag or f"linear_probe/{config.modality}_{name}"

    def features(self, model, spec, host, sources, clips: int, split: str):
        from vattfw.eval import collect, loader, pooled
        where = f"evaluator {self.prefix} ({split} split)"
        need_sources(sources, split, where)
        key = pooled(self.config.modality)
        batches = loader(spec, sources, host, batch_size=self.config.batch_size, clips=clips, crops=1)
        got = collect(model, batches, {self.config.modality: [key]}, clips, where, keep=("label",))
        if "label" not in got:
            raise UserError(Problem(f"{where}: the data has no 'label' field (class ids)"))
        return got[key], got["label"], got["sample"]  # [N, clips, d], [N], [N]

    def run(self, model, spec, host=None) -> dict[str, float]:
        import vattfw
        from vattfw.eval import topk_accuracy
        cfg = self.config
        x_train, y_train, s_train = self.features(model, spec, host, cfg.train, 1, "train")
        x_test, y_test, s_test = self.features(model, spec, host, cfg.test, cfg.clips, "test")
        from vattfw.eval.labels import align_labels, split_label_names
        # Ids by label_name: separately built splits number their classes independently.
        y_train, y_test, _ = align_labels(y_train, s_train, split_label_names(cfg.train, host), y_test, s_test,
                                          split_label_names(cfg.test, host), f"evaluator {self.prefix}")
        c = cfg.num_classes or int(max(y_train.max(), y_test.max())) + 1
        y_train = class_labels(y_train, c, f"evaluator {self.prefix} (train split)", s_train)
        y_test = class_labels(y_test, c, f"evaluator {self.prefix} (test split)", s_test)
        clf = vattfw.build("classifier", cfg.classifier, host, num_classes=c).fit(x_train[:, 0], y_train)
        n, v, d = x_test.shape
        scores = clf.scores(x_test.reshape(n * v, d)).reshape(n, v, -1).mean(1)
        from vattfw.eval.labels import warn_one_class
        warn_one_class(scores, y_test, f"evaluator {self.prefix}")
        return {f"{self.prefix}/top{k}": topk_accuracy(scores, y_test, k) for k in cfg.top_k}


def build(config: Config, **_: object) -> LinearProbe:
    return LinearProbe(config)
