"""`finetune_audio`: end-to-end fine-tuning of the audio branch for multi-label event
classification (A.3).

Mixup of input-label pairs with λ ~ Beta(5, 5) per sample, per-batch label balancing (each
sample's loss divided by the in-batch count of its labels), per-class sigmoid cross-entropy;
SGD 0.2 with momentum 0.9, 5k warmup steps, half-period cosine to 0, 50k steps at batch 1024
(the paper).  The classifier's bias starts at -log(C-1) (the released code).  Test: ``clips``
windows, logits averaged, sigmoid; mAP, AUC and d' = √2·Φ⁻¹(AUC).  Labels come from the
samples' ``labels`` list (or their single ``label``).  The paper's 6.4 s windows at 24 kHz are
set through ``video`` (window = frames·stride/fps) and ``audio`` (sample_rate) overrides.
Trained by the engine's Trainer with the ``balanced_bce`` loss plugin (see _finetune.py); mixup
is applied to the host batches before they reach the device, where the released code applies it
too (``processing.batched_mixup``, in its input pipeline, not in the model step).
"""
from __future__ import annotations

from pydantic import Field

from vattfw import Problem, UserError

from ._finetune import (FinetuneConfig, Optimizer, Schedule, build_finetune_model, checked_batches, optimizer_field,
                        schedule_field, test_logits, train, train_loader)


class Config(FinetuneConfig):
    steps: int = Field(50_000, ge=1, description="SGD steps (the paper: 50k).")
    train_batch_size: int = Field(1024, ge=1, description="Clips per SGD step (the paper: 1024).")
    optimizer: Optimizer = optimizer_field(0.2)  # type: ignore[valid-type]
    schedule: Schedule = schedule_field(5000)  # type: ignore[valid-type]
    mixup: bool = Field(True, description="Mixup of input-label pairs (the paper: on; released code: off by default).")
    mixup_alpha: float = Field(5.0, gt=0, description="λ ~ Beta(alpha, alpha) (the paper: 5).")
    balance: bool = Field(True, description="Divide each sample's loss by the in-batch count of its labels (A.3).")
    clips: int = Field(4, ge=1, description="Test windows per clip whose logits are averaged (released code: 4).")


class FinetuneAudio:
    def __init__(self, config: Config):
        self.config = config
        self.prefix = config.tag or "finetune_audio"

    def targets(self, batch, where: str):
        if "labels" in batch:
            return batch["labels"].float()
        raise UserError(Problem(f"{where}: the data has no multi-hot 'labels' (the loader makes them when "
                                f"num_classes > 0 and the samples carry 'labels' or 'label')"))

    def mixed(self, batches, where: str):
        """Mixup on the host, batch by batch, before the batch goes to the device: as the released
        code (``processing.batched_mixup`` in its input pipeline), partners from the same batch;
        λ and the partners are drawn from a generator seeded with ``seed``."""
        import torch
        from vattfw.objective import mixup
        gen = torch.Generator().manual_seed(self.config.seed)
        a = self.config.mixup_alpha
        for batch in batches:
            y = self.targets(batch, f"{where} (train split)")
            if self.config.mixup and "audio" in batch:  # (no audio: checked_batches names it)
                x, y = mixup(batch["audio"], y, a, a, gen)
                batch = {**batch, "audio": x}
            yield {**batch, "labels": y}

    def run(self, model, spec, host=None) -> dict[str, float]:
        import torch
        from vattfw.eval import multilabel_metrics
        cfg, where = self.config, f"evaluator {self.prefix}"
        ft = build_finetune_model(model, spec, "audio", cfg, host, bias_init="prior")
        batches = checked_batches(self.mixed(train_loader(spec, cfg, host, where), where), "audio", "labels",
                                  None, where)
        loss = {"name": "balanced_bce", "balance": cfg.balance}
        ft, last = train(ft, batches, spec, cfg, cfg.steps, cfg.train_batch_size, loss, "labels", where, host)
        logits, got = test_logits(ft, spec, cfg.test, "audio", cfg, host, cfg.clips, 1, f"{where} (test)",
                                  keep=("labels",))
        if "labels" not in got:
            self.targets(got, f"{where} (test split)")
        out = {f"{self.prefix}/{k}": v for k, v in multilabel_metrics(torch.sigmoid(logits), got["labels"]).items()}
        out[f"{self.prefix}/train_loss"] = last
        return out


def build(config: Config, **_: object) -> FinetuneAudio:
    return FinetuneAudio(config)
