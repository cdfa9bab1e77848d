"""Fine-tuning evaluators' shared machinery: a classifier model built from the pretrained one,
trained by the engine's Trainer (the project's one training loop) on a fine-tuning spec made in
memory (:func:`engine_spec`): the spec's backend, mesh and precision, the evaluator's optimizer,
schedule, steps and batch, a classification loss plugin; no trackers, checkpoints or evaluators.

Inside `vattfw run` (periodic evaluation) the Trainer reuses the run's backend, already started
on the same mesh (:func:`vattfw.backend.start_once`): XLA's SPMD mode and torch's device-mesh
groups are set up once per process.  The trained model is then tested where it trained.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

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
    section = model_section(spec, modality, cfg, grid, bias_init)
    ft = build_model(section, host)
    ft.vattfw_section = section  # the engine's fine-tuning spec is built from it (train())
    branch = (f"tokenizers.{modality}.", f"backbones.{modality}.")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k.startswith(branch)}
    return load_weights(ft, state, ignore=("heads.",), where="of the pretrained model")


def engine_spec(spec: Any, section: dict, loss: dict, label: str, cfg: Any, steps: int, batch: int,
                out_dir: str, host=None) -> Any:
    """The fine-tuning run as a spec for the engine's Trainer: the classifier model ``section``,
    one loss term ``loss(logits, <label>)``, the evaluator's optimizer, schedule, steps and batch;
    run backend, compile, mesh and precision from ``spec``; no trackers, checkpoints or evaluators
    (everything written goes under ``out_dir``)."""
    from vattfw.spec.loader import validate
    import vattfw
    raw = spec.model_dump()
    # (the Trainer is given its batches: the data section is only carried along, and a spec
    # made for evaluation alone has no training sources)
    raw["data"] = {k: v for k, v in raw["data"].items() if v != [] or k not in ("sources", "eval_sources")}
    raw["run"] = {**raw["run"], "name": "finetune", "seed": cfg.seed, "output_dir": out_dir, "demo_data": None}
    raw.update(
        model=section,
        losses={"terms": {"classification": {"loss": loss, "x": "logits", "y": label}}},
        optimizer=cfg.optimizer.model_dump(), schedule=cfg.schedule.model_dump(),
        # log the first and last steps only: the loss is read on the host at logged steps
        train={"global_batch_size": batch, "steps": steps, "log_every": steps,
               "precision": spec.train.precision},
        checkpoint={"resume": "never", "dir": f"{out_dir}/checkpoints", "every_steps": steps, "keep_last": 1},
        tracking={"trackers": []},
        eval={"evaluators": []},
    )
    return validate(raw, host or vattfw.default_host())


def checked_batches(batches, modality: str, label: str, num_classes: int | None, where: str):
    """The training batches as the engine's step takes them: only ``modality`` and ``label``
    (no other field is uploaded), class ids checked on the host (the compiled step cannot
    raise), numbered as the steps that will take them."""
    for i, batch in enumerate(batches):
        if modality not in batch:
            raise UserError(Problem(f"{where}: the training data has no {modality!r}"))
        y = batch[label]
        if num_classes is not None:
            from ._common import class_labels
            y = class_labels(y, num_classes, f"{where} (train split, batch {i})")
        yield {modality: batch[modality], label: y}


def train(ft, batches, spec, cfg, steps: int, batch: int, loss: dict, label: str, where: str, host=None):
    """``steps`` optimiser steps of ``ft`` (built by :func:`build_finetune_model`) on ``batches``
    (CPU dicts of the input modality and ``label``: :func:`checked_batches`) with the loss plugin
    ``loss``, ``batch`` rows a step by the engine's Trainer, on the backend running
    in this process (a periodic evaluation inside `vattfw run`) or a new one of ``spec``'s.
    Returns (the trained model, on the device, the last logged loss)."""
    import signal
    import tempfile
    from vattfw.backend import backend_for
    from vattfw.engine.evaluate import device_model
    from vattfw.engine.trainer import Trainer
    with tempfile.TemporaryDirectory(prefix="vattfw-finetune-") as tmp:
        inner = engine_spec(spec, ft.vattfw_section, loss, label, cfg, steps, batch, tmp, host)
        backend = backend_for(inner.run)
        _check_batch(batch, inner, backend, where)
        trainer = Trainer(inner, host, backend=backend, model=ft, loader=batches, resume="never", trackers=False,
                          progress=False, checkpoints=False, evaluate=False)
        result = trainer.run()
        if result.status == "failed":  # (the one fault a run without checkpoints has: a non-finite loss)
            raise UserError(Problem(f"{where}: fine-tuning stopped: {result.summary.get('error', 'see above')}; "
                                    f"lower the learning rate"))
        if trainer.stop_signal:  # the Trainer caught it: hand it on to the run this evaluation is part of
            trainer.warn(f"{where}: fine-tuning stopped by {signal.Signals(trainer.stop_signal).name} after step "
                          f"{result.step} of {steps}; its results are those of the shorter fine-tuning")
            signal.raise_signal(trainer.stop_signal)
    trained = device_model(trainer.model, inner)  # tested where it trained (test rows split over the mesh)
    trained.eval()
    return trained, (result.losses[-1][1] if result.losses else float("nan"))


def _check_batch(batch: int, inner, backend, where: str) -> None:
    """The Trainer would name train.global_batch_size, a field of a spec the user never wrote."""
    from vattfw.engine.mesh import resolve_mesh
    sizes = resolve_mesh(inner.mesh, backend.device_count())
    rows = sizes["data"] * sizes["fsdp"]
    if batch % rows:
        raise UserError(Problem(f"{where}: train_batch_size {batch} does not divide over the mesh's {rows} batch "
                                f"devices (mesh data x fsdp = {sizes['data']} x {sizes['fsdp']}); use a multiple "
                                f"of {rows}"))


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
