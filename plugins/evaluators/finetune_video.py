"""`finetune_video`: end-to-end fine-tuning of the video branch for classification (A.2.5).

SGD 0.005 with momentum 0.9, 2.5k linear warmup steps then a half-period cosine to 0, label
smoothing 0.1; the positional tables are interpolated to the fine-tuning grid (8+20+20 at
320x320) and trained; DropToken off unless ``drop_token: true``.  Test: ``clips`` x ``crops``
views (4 x 3 = 12), logits averaged, then top-1 / top-5.  Paper defaults: 100k steps at batch 64
and 320x320 frames at 25 fps with stride 2 (``video``); classifier dropout 0.5 is the released
code's (the paper does not say).  Trained by the engine's Trainer (see _finetune.py).
"""
from __future__ import annotations

from pydantic import Field

from ._finetune import (FinetuneConfig, Optimizer, Schedule, build_finetune_model, checked_batches, optimizer_field,
                        schedule_field, test_logits, train, train_loader)
from ._common import class_labels


class Config(FinetuneConfig):
    steps: int = Field(100_000, ge=1, description="SGD steps (the paper: 100k).")
    optimizer: Optimizer = optimizer_field(0.005)  # type: ignore[valid-type]
    schedule: Schedule = schedule_field(2500)  # type: ignore[valid-type]
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="α of y·(1-α) + α/C (the paper: 0.1).")
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout before the classifier (the released code: 0.5).")
    video: dict = Field(default_factory=lambda: {"size": 320, "fps": 25.0, "stride": 2},
                        description="Overrides of data.video (the paper: 320x320, 25 fps, stride 2).")
    interpolate_positions: bool = Field(True, description="New positional tables sized to the fine-tuning grid, "
                                                          "interpolated from the pretrained ones (the paper); false "
                                                          "keeps the pretrained sizes, resampled at run time.")
    clips: int = Field(4, ge=1, description="Uniformly spaced test clips per video (A.2.5: 4).")
    crops: int = Field(3, description="Spatial test crops per clip: 3 (A.2.5) or 1.")
    top_k: list[int] = Field(default_factory=lambda: [1, 5], description="Accuracies reported: top-k for each k.")


class FinetuneVideo:
    def __init__(self, config: Config):
        self.config = config
        self.prefix = config.tag or "finetune_video"

    def grid(self, spec):
        from vattfw.eval import derived_spec
        if not self.config.interpolate_positions:
            return None
        video = derived_spec(spec, [], video=self.config.video, train=True).data.video
        tok = spec.model.tokenizers.get("video")
        patch = getattr(getattr(tok, "config", None), "patch", None)
        if patch is None:
            return None
        return (video.frames // patch[0], video.size // patch[1], video.size // patch[2])

    def run(self, model, spec, host=None) -> dict[str, float]:
        from vattfw.eval import topk_accuracy
        cfg, where = self.config, f"evaluator {self.prefix}"
        ft = build_finetune_model(model, spec, "video", cfg, host, grid=self.grid(spec))
        batches = checked_batches(train_loader(spec, cfg, host, where), "video", "label", cfg.num_classes, where)
        loss = {"name": "cross_entropy", "label_smoothing": cfg.label_smoothing}
        ft, last = train(ft, batches, spec, cfg, cfg.steps, cfg.train_batch_size, loss, "label", where, host)
        logits, got = test_logits(ft, spec, cfg.test, "video", cfg, host, cfg.clips, cfg.crops, f"{where} (test)",
                                  keep=("label",))
        labels = class_labels(got["label"], cfg.num_classes, f"{where} (test split)", got["sample"])
        out = {f"{self.prefix}/top{k}": topk_accuracy(logits, labels, k) for k in cfg.top_k}
        out[f"{self.prefix}/train_loss"] = last
        return out


def build(config: Config, **_: object) -> FinetuneVideo:
    return FinetuneVideo(config)
