"""Running the spec's evaluators: on the model being trained (the trainer), or on a checkpoint
(:func:`evaluate_checkpoint`: `vattfw eval` and the sweep worker, one code path)."""
from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import Problem, UserError


def device_model(model: torch.nn.Module, spec: Any) -> torch.nn.Module:
    """``model`` on the spec's device, where the evaluators run it (batch by batch; only their
    outputs come to the CPU): as it is when it is there already (the model being trained, during
    `vattfw run`); else moved there in place by the spec's backend, started on the spec's mesh
    (or the one already running in this process) and split by the same plan as for training.
    Under SPMD the model gets ``place_batch``: eval inputs split over the mesh's batch axes."""
    from ..backend import backend_for, running, start_once
    from .mesh import plan_model, resolve_mesh
    backend = running(spec.run.backend)
    if any(t.device.type != "cpu" for t in itertools.chain(model.parameters(), model.buffers())):
        if backend is not None and backend.spmd:
            model.place_batch = functools.partial(_place_batch, backend, resolve_mesh(spec.mesh, backend.device_count()))
        return model
    backend = backend_for(spec.run)
    sizes = resolve_mesh(spec.mesh, backend.device_count())
    start_once(backend, sizes)  # (before .device: querying the XLA device fixes the runtime's SPMD mode)
    if backend.device.type == "cpu":  # (the torch backend on a machine without a GPU)
        return model
    model = backend.prepare_model(model, plan_model(model, sizes, spec.mesh.column_parallel, spec.mesh.row_parallel))
    if backend.spmd:
        model.place_batch = functools.partial(_place_batch, backend, sizes)
    return model


def _place_batch(backend: Any, sizes: dict[str, int], x: torch.Tensor) -> torch.Tensor:
    """``x`` on the device, its rows split over data x fsdp (each device runs its share of the
    eval batch, as in training); replicated when the rows do not divide (the last batch of a
    split may be short) or it is 1-D (torch_xla 2.9 cannot shard those on upload)."""
    from .mesh import batch_specs
    rows = sizes["data"] * sizes["fsdp"]
    if x.dim() < 2 or x.shape[0] % rows:
        return backend.to_device(x)
    return backend.to_device(x, batch_specs({"x": x})["x"])


def run_evaluators(model: torch.nn.Module, spec: Any, host: Any = None, only: list[str] | None = None,
                   timings: dict[str, float] | None = None) -> dict[str, float]:
    """Build and run every evaluator of ``spec.eval.evaluators`` (or those whose name or tag is
    in ``only``); return their merged results.  ``model``'s train/eval mode is restored."""
    import vattfw
    refs = list(spec.eval.evaluators)
    if only:
        known = {r.name for r in refs} | {getattr(r.config, "tag", None) for r in refs}
        unknown = [o for o in only if o not in known]
        if unknown:
            raise UserError(Problem(f"--only {', '.join(unknown)}: the spec's eval.evaluators are "
                                    f"{', '.join(sorted(str(k) for k in known if k)) or 'none'}", "eval.evaluators"))
        refs = [r for r in refs if r.name in only or getattr(r.config, "tag", None) in only]
    if not refs:
        raise UserError(Problem("the spec names no evaluators; add e.g. eval: {evaluators: [{name: "
                                "zero_shot_retrieval, data: [...]}]}", "eval.evaluators"))
    model = device_model(model, spec)
    was_training = model.training
    results: dict[str, float] = {}
    try:
        for i, ref in enumerate(refs):
            start = time.perf_counter()
            evaluator = vattfw.build("evaluator", ref, host)
            out = evaluator.run(model, spec, host)
            clash = sorted(set(out) & set(results))
            if clash:
                raise UserError(Problem(f"evaluators report the same metric {clash[0]!r}; give them different "
                                        f"`tag`s", f"eval.evaluators.{i}.tag"))
            results.update(out)
            if timings is not None:
                timings[getattr(evaluator, "prefix", None) or ref.name] = time.perf_counter() - start
    finally:
        model.train(was_training)
    return results


@dataclass
class Evaluation:
    """What :func:`evaluate_checkpoint` found: the evaluators' results (``<tag>/<metric>``)."""

    step: int
    checkpoint: str  # where the weights came from (a path, or the random initialisation's label)
    results: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    random_init: bool = False


def eval_end_metrics(results: dict[str, float], seconds: float, prefix: str = "eval/") -> dict[str, float]:
    """The ``vattfw_eval_end`` payload: ``eval/<tag>/<metric>`` and ``eval/seconds``, the names the
    trainer sends, so a checkpoint evaluated later extends the training run's metric history."""
    out = {f"{prefix}{k}": float(v) for k, v in results.items()}
    out[f"{prefix}seconds"] = float(seconds)
    return out


# A baseline must not read as the run's step-0 evaluation in the same metric history.
RANDOM_INIT_PREFIX = "eval/random_init/"


def random_init_label(spec: Any) -> str:
    return f"random initialisation (run.seed={spec.run.seed}, no checkpoint)"


def seeded_model(spec: Any, host: Any) -> torch.nn.Module:
    """The spec's model as the trainer builds it before its first step on a fresh start: every
    host RNG seeded with ``run.seed``, then built.  ``model.init`` is not applied: this is the
    untrained baseline a probe is compared with."""
    import random
    import numpy as np
    from ..model import build_model
    random.seed(spec.run.seed)
    np.random.seed(spec.run.seed % 2 ** 32)
    torch.manual_seed(spec.run.seed)
    return build_model(spec.model, host)


def evaluate_checkpoint(spec: Any, host: Any, checkpoint: str | None, *, only: list[str] | None = None,
                        track: bool = True) -> Evaluation:
    """Load ``checkpoint`` (an engine checkpoint folder, a run's checkpoint folder = its newest
    complete checkpoint, or a state-dict file) into the spec's model, run its evaluators and send
    the lifecycle hooks (``vattfw_run_start``, ``vattfw_eval_end``, ``vattfw_run_end``) to every
    plugin; ``track=False`` leaves the spec's trackers out, as `vattfw run --no-track` does.
    ``checkpoint=None`` evaluates the seeded random initialisation (:func:`seeded_model`), step 0,
    tracked as ``eval/random_init/<tag>/<metric>``."""
    from ..model import build_model
    from .weights import load_weights, read_checkpoint
    if checkpoint is None:
        model, step, where = seeded_model(spec, host), 0, random_init_label(spec)
    else:
        state, step, where = read_checkpoint(checkpoint)
        model = load_weights(build_model(spec.model, host), state, where=str(where))
    timings: dict[str, float] = {}
    start = time.perf_counter()
    results = run_evaluators(model, spec, host, only=only, timings=timings)
    done = Evaluation(int(step or 0), str(where), results, timings, time.perf_counter() - start,
                      random_init=checkpoint is None)
    _announce(spec, host, done, track)
    return done


def _announce(spec: Any, host: Any, done: Evaluation, track: bool) -> None:
    from .tracking import Trackers
    from .paths import run_dir_of
    run_dir = str(run_dir_of(spec))
    trackers = Trackers(spec, host, run_dir, disabled=not track)
    try:
        trackers.hook.vattfw_run_start(spec=spec, run_dir=run_dir)
        prefix = RANDOM_INIT_PREFIX if done.random_init else "eval/"
        trackers.hook.vattfw_eval_end(step=done.step, results=eval_end_metrics(done.results, done.seconds, prefix))
        # (no "checkpoint" for a random init: trackers would record the label as the run's final checkpoint)
        summary = {"step": done.step, "random_init": True} if done.random_init else \
            {"step": done.step, "checkpoint": done.checkpoint}
        trackers.hook.vattfw_run_end(status="finished", summary=summary)
    finally:
        trackers.close()


def print_results(done: Evaluation) -> None:
    """The results as a table on stdout (counts as integers, timings dimmed)."""
    from rich.console import Console
    from rich.table import Table
    title = done.checkpoint if done.random_init else f"{done.checkpoint} (step {done.step})"
    title = f"evaluation of {title}"
    table = Table(title=title, min_width=min(len(title) + 4, 100))  # the title on one line
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in done.results.items():
        shown = f"{value:.0f}" if name.endswith(("/queries", "/pool")) else f"{value:.4f}"
        table.add_row(name, shown)
    for name, seconds in done.timings.items():
        table.add_row(f"[dim]{name} time[/dim]", f"[dim]{seconds:.1f} s[/dim]")
    Console(width=100).print(table)
