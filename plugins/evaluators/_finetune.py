"""Fine-tuning evaluators' shared machinery: a classifier model built from the pretrained one,
and a plain-torch training loop (eager, CPU or whatever device the parameters are on).

The engine's trainer is not reused: these evaluators must run inside `vattfw eval` and inside
an engine run without a second mesh/compile set-up; at demo sizes eager torch is enough.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from pydantic import Field

import vattfw
from vattfw import Problem, UserError, plugin

from ._common import EvaluatorConfig, Sources, need_sources, sources_field


class FinetuneConfig(EvaluatorConfig):
    train: Sources = sources_field("training split")
    test: Sources = sources_field("test split")
    num_classes: int = Field(ge=2, description="Number of classes of the fine-tuning task.")
    train_batch_size: int = Field(64, ge=1, description="Clips per SGD step.")
    drop_token: bool = Field(False, description="Keep DropToken on while fine-tuning (the paper: off; the released "
                                                "code: on).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the linear classifier.")
    video: dict[str, Any] = Field(default_factory=dict, description="Overrides of data.video for this task, "
                                                                    "e.g. {size: 320, fps: 25, stride: 2}.")
    audio: dict[str, Any] = Field(default_factory=dict, description="Overrides of data.audio for this task.")
    seed: int = Field(0, ge=0, description="Seed of the classifier initialisation, dropout and mixup.")


def _merged(section: Any, overrides: dict) -> dict:
    return {**section.model_dump(), **overrides}


def model_section(spec: Any, modality: str, cfg: FinetuneConfig, grid: tuple[int, ...] | None,
                  bias_init: str = "zero") -> dict:
    """The pretraining model's ``modality`` branch plus a ``linear`` classifier head; with
    ``grid`` the tokenizer's positional tables get that many buckets (interpolated on load)."""
    raw = spec.model.model_dump()
    if modality not in raw["tokenizers"]:
        raise UserError(Problem(f"fine-tuning {modality}: the spec's model has no {modality} tokenizer/backbone "
                                f"(it has: {', '.join(raw['tokenizers']) or 'none'})", "model.tokenizers"))
    tok = dict(raw["tokenizers"][modality])
    if isinstance(tok.get("drop_token"), dict):
        tok["drop_token"] = {**tok["drop_token"], "enabled": cfg.drop_token}
    if grid is not None and "buckets" in tok:
        tok["buckets"] = list(grid)
    head = {"name": "linear", "num_classes": cfg.num_classes, "modality": modality, "dropout": cfg.dropout,
            "bias_init": bias_init, "output": "logits"}
    return {"tokenizers": {modality: tok}, "backbones": {modality: raw["backbones"][modality]},
            "heads": {"classifier": head}}


def build_finetune_model(model, spec, modality: str, cfg: FinetuneConfig, host=None,
                         grid: tuple[int, ...] | None = None, bias_init: str = "zero"):
    """A new model (pretrained branch + new classifier); ``model`` itself is left untouched."""
    import torch
    from vattfw.eval import load_weights
    from vattfw.model import build_model
    torch.manual_seed(cfg.seed)  # the classifier's initialisation
    ft = build_model(model_section(spec, modality, cfg, grid, bias_init), host)
    branch = (f"tokenizers.{modality}.", f"backbones.{modality}.")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k.startswith(branch)}
    return load_weights(ft, state, ignore=("heads.",), where="of the pretrained model")


def train(ft, batches, modality: str, optimizer_spec, schedule_spec, steps: int,
          loss_fn: Callable, where: str, host=None) -> float:
    """``steps`` SGD steps; ``loss_fn(logits, batch, step)`` -> scalar.  Returns the last loss."""
    import torch
    params = [(n, p) for n, p in ft.named_parameters() if p.requires_grad]
    opt = vattfw.build("optimizer", optimizer_spec, host, params=params)
    base_lr = opt.param_groups[0]["lr"]
    lr_at = vattfw.build("schedule", schedule_spec, host, base_lr=base_lr, total_steps=steps)
    ft.train()
    it = iter(batches)
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        batch = next(it)
        if modality not in batch:
            raise UserError(Problem(f"{where}: the training data has no {modality!r}"))
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = loss_fn(ft({modality: batch[modality]})["logits"], batch, step)
        if not math.isfinite(float(loss.detach())):
            raise UserError(Problem(f"{where}: the fine-tuning loss is {float(loss.detach())} at step {step}; "
                                    f"lower the learning rate"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    ft.eval()
    return float(loss.detach())


def test_logits(ft, spec, sources, modality: str, cfg: FinetuneConfig, host, clips: int, crops: int,
                where: str, keep=("label", "labels")):
    """Per-sample logits averaged over its clips x crops views, and the kept label fields."""
    from vattfw.eval import LOGITS, collect, loader
    need_sources(sources, "test", where)
    batches = loader(spec, sources, host, batch_size=cfg.batch_size, clips=clips, crops=crops,
                     video=cfg.video, audio=cfg.audio, num_classes=cfg.num_classes)
    got = collect(ft, batches, {modality: [LOGITS]}, clips * crops, where, keep=keep)
    return got[LOGITS].mean(1), got


def train_loader(spec, cfg: FinetuneConfig, host, where: str):
    from vattfw.eval import loader
    need_sources(cfg.train, "train", where)
    return loader(spec, cfg.train, host, batch_size=cfg.train_batch_size, train=True, video=cfg.video,
                  audio=cfg.audio, num_classes=cfg.num_classes)


def optimizer_field(lr: float):
    return Field(default_factory=lambda: {"name": "sgd", "lr": lr, "momentum": 0.9},
                 description=f"Optimizer plugin (the paper: SGD, momentum 0.9, lr {lr}).")


def schedule_field(warmup: int):
    return Field(default_factory=lambda: {"name": "warmup_cosine", "warmup_steps": warmup, "end_lr": 0.0,
                                          "period": "half"},
                 description=f"Schedule plugin (the paper: {warmup} warmup steps, half-period cosine to 0).")


Optimizer = plugin("optimizer")
Schedule = plugin("schedule")
