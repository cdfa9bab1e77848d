"""The trainer behind `vattfw run`: build from the spec, shard, compile one step, train.

The compiled step (:meth:`Trainer._train_step`) is forward + losses + backward over the
micro-batches, the gradient norm, the optimiser update and a few device-side health
counters; nothing in it reads a value on the host.  Metrics, NaN checks and progress are
read in step closures registered after each logged step, which the backend runs once that
step's graph has executed (at the next step boundary, so logging overlaps the next step).

NaN/inf: the step records, on the device, the first non-finite step and its loss terms;
the host reads them at every logged step and before every checkpoint, so a checkpoint
never holds a non-finite state.  ``nan_policy: stop`` then ends the run naming the step
and the terms; ``skip`` keeps the parameters of a non-finite step unchanged (a select on
the device) and counts it.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .. import checkpoint as ckpt
from ..data.tracked import TrackedLoader
from ..errors import DataError, Problem, UserError
from . import signals
from .checkpointer import Checkpointer, restore_rng, rng_state, seed_host
from .mesh import batch_specs, check_batch, per_device_bytes, plan_model, resolve_mesh
from .meter import Meter, meta_copy
from .optstate import create_state
from .param_groups import param_groups
from .paths import run_dir_of

# torch_xla bakes the Python scalars 0 and 1 into the graph as constants, so an exact lr of 0
# (step 0 of a warmup from 0, or a schedule ending at 0) compiles a second graph.  A floor
# of 1e-12 changes no fp32 parameter of magnitude > 1e-5 (the update is below half an ulp).
LR_FLOOR = 1e-12


class TrainingStopped(Exception):
    """The run stopped on a fault (non-finite loss, checkpoint failure); exit status 1."""


@dataclass
class Result:
    status: str  # finished | interrupted | failed | dry_run
    step: int
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    losses: list[tuple[int, float]] = field(default_factory=list)
    main_process: bool = True  # the process that speaks for the run (prints the summary)


class _Gathered(Mapping):
    """A read-only view of a batch/outputs dict whose tensors are gathered over the batch
    shards on first read (only the fields the objective uses travel)."""

    def __init__(self, fields: Mapping[str, Any], backend: Any):
        self._fields, self._backend, self._done = fields, backend, {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._done:
            value = self._fields[key]
            self._done[key] = self._backend.gather_batch(value) if isinstance(value, torch.Tensor) else value
        return self._done[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def __iter__(self):
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


class Trainer:
    """One training run.  ``model``, ``loader`` and ``backend`` may be passed in (tests,
    benchmarks); otherwise they are built from the spec."""

    def __init__(self, spec: Any, host: Any = None, *, backend: Any = None, model: Any = None,
                 loader: Any = None, resume: str | None = None, trackers: bool = True,
                 console: Any = None, progress: bool = True, checkpoints: bool = True,
                 evaluate: bool = True):
        from .. import default_host
        self.spec, self.host = spec, host or default_host()
        self._backend, self._model, self._loader = backend, model, loader
        self.resume_arg = spec.checkpoint.resume if resume is None else resume
        self.use_trackers, self.show_progress, self.write_checkpoints = trackers, progress, checkpoints
        self.evaluate_at_end = evaluate
        self.eval_results: dict[str, float] = {}
        self.console = console
        self.run_dir = run_dir_of(spec)
        self.ckpt_root = Path(spec.checkpoint.dir) if spec.checkpoint.dir else self.run_dir / "checkpoints"
        self.stop_signal: int | None = None
        self.losses: list[tuple[int, float]] = []
        self.last_metrics: dict[str, float] = {}
        self.init_report = None  # what model.init loaded, on a fresh start
        # Built by setup(), from the spec (or what was passed in):
        self.backend: Any = None
        self.devices, self.sizes, self.micro, self.plan = 0, {}, 0, None
        self.checkpoints: Checkpointer | None = None
        self.resume_from: Path | None = None
        self.meta: dict[str, Any] = {}  # the resumed checkpoint's metadata ({} on a fresh start)
        self.device = self.model = self.objective = self.optimizer = self.schedule = None
        self.params: list[torch.Tensor] = []
        self.flops_model: torch.nn.Module | None = None  # the meta copy FLOPs are counted on (first step)
        self.step = self.consumed = self.compiles_at_start = 0
        self.eval_compiles = 0  # graphs compiled by periodic evaluation (a fine-tuning evaluator trains)
        self.loader: Any = None
        self.tracked: TrackedLoader | None = None
        self.flat_keys: set[str] = set()  # 1-D batch fields sent as [B, 1] under SPMD
        self.specs: dict[str, tuple] = {}  # batch field -> input sharding
        self.step_t = self.bad_step = self.bad_values = self.skipped_t = None  # device-side health counters
        # Set by run():
        self.trackers: Any = None
        self.meter: Meter | None = None
        self.progress_bar: Any = None
        self.t_start, self.start_step = time.perf_counter(), 0

    @property
    def last_checkpoint(self) -> str | None:
        return self.checkpoints.last if self.checkpoints else None

    # == setup =================================================================
    def setup(self, dry_run: bool = False) -> None:
        from ..backend import get_backend, start_once
        from ..model import attach_losses, build_model
        from ..objective import build_objective
        from .. import build
        spec = self.spec
        run = spec.run
        self.backend = self._backend or get_backend(run.backend, run.compile, run.compile_cache, run.compile_cache_dir)
        self.devices = self.backend.device_count()
        self.sizes = resolve_mesh(spec.mesh, self.devices)
        start_once(self.backend, self.sizes)  # before the first device tensor (XLA: SPMD mode); the process mesh
        # (once per backend: a Trainer inside a run, e.g. a fine-tuning evaluator, shares the run's)
        self.micro = check_batch(spec.train.global_batch_size, spec.train.grad_accumulation,
                                 self.backend.data_shard[1], self.sizes)
        seed_host(spec.run.seed)
        model = self._model if self._model is not None else build_model(spec.model, self.host)
        # The losses are a submodule (``losses.terms.<term>.*``): a loss that owns parameters is
        # moved, distributed, optimised and checkpointed with the model.
        objective = attach_losses(model, build_objective(spec.losses, self.host))
        self.plan = plan_model(model, self.sizes, spec.mesh.column_parallel, spec.mesh.row_parallel)
        self.checkpoints = Checkpointer(spec, self.backend, self.ckpt_root, self.warn)
        self.checkpoints.prepare()  # a read-only or uncreatable folder: one line, before anything is built
        self.resume_from, restored = self.checkpoints.open(self.resume_arg)
        self.meta = restored.meta if restored else {}
        if restored:
            restored.load_model(model)
        elif spec.model.init is not None:  # a fresh start: pretrained weights, before sharding
            from .initialise import apply_init
            self.init_report = apply_init(model, spec.model.init)
            self._print(self.init_report.text())
        self.device = self.backend.device
        # Before prepare_model: an FSDP2 / DTensor module cannot be deep-copied, and its local
        # shards hold only part of the work (see _flops_probe).
        self.flops_model = meta_copy(model)
        self.model = self.backend.prepare_model(model, self.plan)  # on the device, distributed by the plan
        self.objective = objective  # (moved in place with the model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build("optimizer", spec.optimizer, self.host, params=self._param_groups(),
                               kernels=self.backend.optimizer_kernels())
        base_lr = getattr(spec.optimizer.config, "lr", None) or self.optimizer.param_groups[0]["lr"]
        self.schedule = build("schedule", spec.schedule, self.host, base_lr=base_lr, total_steps=spec.train.steps)
        if restored:
            self._load_optimizer(restored)
        elif create_state(self.optimizer):  # before the first trace, so the step compiles once
            self._shard_new_state()
        self.step = int(self.meta.get("step", 0))
        if self._loader is not None:
            self.loader = self._loader
        else:  # a dry run needs shapes, not data: the sources may be out of reach from this machine
            self.loader = [synthetic_batch(spec, self.micro)] if dry_run else self._build_loader()
        if self.meta.get("data") is not None and hasattr(self.loader, "load_state_dict"):
            self.loader.load_state_dict(self.meta["data"])
        self._init_health()
        self.tracked = TrackedLoader(self.loader)
        first = self.tracked.peek()
        # torch_xla 2.9's input sharding fails on 1-D tensors (IndexError in send_cpu_data_to_device):
        # under SPMD they travel as [B, 1] and are flattened again inside the step.
        self.flat_keys = {k for k, v in first.items() if v.dim() == 1} if self.backend.spmd else set()
        self.tracked.lift = self.flat_keys
        self.specs = batch_specs({k: v[:, None] if k in self.flat_keys else v for k, v in first.items()})
        self.consumed = 0
        if not dry_run:  # (a dry run compiles the step only, so its memory analysis is the step's)
            self.backend.sync()  # materialise whatever building and sharding left pending
        self.compiles_at_start = self.backend.compile_count()
        # Last: nothing after this point may draw from the device RNG before the first step.
        self.backend.seed(spec.run.seed)
        if self.meta:
            restore_rng(self.meta["rng"], self.backend)

    def _load_optimizer(self, restored) -> None:
        try:
            restored.load_optimizer(self.model, self.optimizer)
        except ValueError as exc:  # torch: the saved groups do not fit this run's
            raise UserError(Problem(f"checkpoint {self.resume_from}: its optimiser state does not fit this run's "
                                    f"parameter groups ({exc}); resume with the train.lr_scale of the run that "
                                    f"wrote it, or start afresh with checkpoint.resume: never",
                                    "train.lr_scale")) from None

    def _shard_new_state(self) -> None:
        """Moments split like their parameters: the state the step returns is then sharded as the
        state it was given, and the next step reuses the graph."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        for p, st in self.optimizer.state.items():
            spec = self.plan.specs.get(names.get(id(p), ""))
            for v in st.values():
                if spec and isinstance(v, torch.Tensor) and v.device == p.device and v.shape == p.shape:
                    self.backend.shard(v, spec)

    def _build_loader(self):
        from ..data import build_loader
        index, count = self.backend.data_shard  # this process's rows of every global batch
        return build_loader(self.spec, self.host, process_index=index, process_count=count, split="train")

    def _param_groups(self) -> list:
        """(name, parameter) pairs, grouped by ``train.lr_scale`` and loss parameters (param_groups)."""
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        return param_groups(named, self.spec.train.lr_scale)

    def _init_health(self) -> None:
        n_terms = len(self.spec.losses.terms)
        d = self.device  # made on the CPU and moved: device data, not graph constants
        self.step_t = torch.tensor(self.step, dtype=torch.int64).to(d)
        self.bad_step = torch.tensor(-1, dtype=torch.int64).to(d)
        self.bad_values = torch.zeros(n_terms + 1).to(d)
        self.skipped_t = torch.tensor(int(self.meta.get("skipped_steps", 0)), dtype=torch.int64).to(d)

    # == the compiled step =====================================================
    def _train_step(self, batches: list[dict]) -> tuple:
        total, terms = self._forward_backward(batches)
        grads = [p.grad for p in self.params if p.grad is not None]
        grad_norm = self.backend.total_norm(grads)
        finite = torch.isfinite(total) & torch.isfinite(grad_norm)
        skip = self.spec.train.nan_policy == "skip"
        if skip:
            before = self._skip_prepare(grads, finite)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if skip:
            self._skip_restore(before, finite)
        self._update_health(finite, total, terms)
        return total, terms, grad_norm

    def _device_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.optimizer.state.get(p, {}).items()
                if isinstance(v, torch.Tensor) and v.device == p.device}

    def _skip_prepare(self, grads: list[torch.Tensor], finite: torch.Tensor) -> list:
        """nan_policy skip: zero non-finite gradients (so the update's arithmetic stays finite)
        and remember parameters and optimiser moments, restored by a select after the update.
        Adam's host-side step counter still advances on a skipped step."""
        with torch.no_grad():
            for g in grads:
                g.copy_(torch.where(finite, g, torch.zeros_like(g)))
        return [(p.detach().clone(), {k: v.clone() for k, v in self._device_state(p).items()})
                for p in self.params]

    def _skip_restore(self, before: list, finite: torch.Tensor) -> None:
        with torch.no_grad():
            for p, (old_p, old_state) in zip(self.params, before):
                p.copy_(torch.where(finite, p, old_p))
                for k, v in self._device_state(p).items():
                    old = old_state.get(k)
                    v.copy_(torch.where(finite, v, old if old is not None else torch.zeros_like(v)))

    def _flops_probe(self, batches: list[dict]) -> None:
        """Forward and backward of the step on the meta copy of the undistributed model with
        the global batch's shapes (nothing is computed, no device graph is traced), for
        FlopCounterMode.  The count is the model FLOPs of the global step, the same for any
        mesh and process count, which MFU needs: counting each process's real step (its shards,
        its rows) and multiplying by the process count would be wrong both ways, since every
        process computes the loss on the gathered global batch and, under tensor parallelism,
        every layer not split by the plan, and none of this redundant work is model FLOPs.
        The host RNG is left as it was."""
        model, self.flops_model = self.flops_model, None  # counted once; its memory goes
        rows = 1 if self.backend.spmd else self.backend.data_shard[1]  # this process holds 1/rows of them
        rng = torch.get_rng_state()
        try:
            for batch in batches:
                batch = {k: torch.empty((v.shape[0] * rows, *v.shape[1:]), dtype=v.dtype, device="meta")
                         for k, v in batch.items()}
                batch = {k: v[:, 0] if k in self.flat_keys else v for k, v in batch.items()}
                total, _ = model.losses(model(batch), batch)
                (total / len(batches)).backward()
        finally:
            torch.set_rng_state(rng)

    def _forward_backward(self, batches: list[dict]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = len(batches)
        batches = [{k: v[:, 0] if k in self.flat_keys else v for k, v in b.items()} for b in batches]
        if n > 1 and self.spec.train.accumulation == "cached":
            return self._cached_forward_backward(batches)
        total_sum, term_sums = None, {}
        for batch in batches:
            with self.backend.autocast(self.spec.train.precision):
                outputs = self.model(batch)
            total, terms = self._objective(outputs, batch)
            (total / n).backward()
            total_sum = total.detach() if total_sum is None else total_sum + total.detach()
            for k, v in terms.items():
                term_sums[k] = v.detach() if k not in term_sums else term_sums[k] + v.detach()
        return total_sum / n, {k: v / n for k, v in term_sums.items()}

    def _cached_forward_backward(self, batches: list[dict]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Feature-cached accumulation (GradCache): the loss and its negatives span the whole
        batch, while autograd holds one micro-batch's activations at a time.

        1. every micro-batch's per-clip features (tokenizers + backbones), detached at once
           (its autograd graph is dropped; not ``no_grad``, which FlopCounterMode's module
           hooks reject), noting the device RNG state before each;
        2. the heads and the losses on the concatenated features, with autograd: the FAC
           head's BatchNorm normalises with the whole batch's statistics (and updates its
           running averages once), and backward leaves the heads' and losses' gradients and
           d loss / d features (the cache);
        3. every micro-batch again with autograd, from its noted RNG state (so the same
           dropout and DropToken draws), back-propagating its slice of the cached gradient.
        Gradients equal one pass over the whole batch.  The RNG states are read and set on the
        host (torch_xla keeps a running seed there; the graph receives them as data, so the
        step still compiles once); it is left where step 2 ended, as if nothing were replayed."""
        features, project = _split_model(self.model)
        precision = self.spec.train.precision
        states, cached = [], []
        for batch in batches:
            states.append(self.backend.rng_state())
            with self.backend.autocast(precision):
                cached.append({k: v.detach() for k, v in features(batch).items()})
        feats = {k: torch.cat([c[k] for c in cached]).requires_grad_(cached[0][k].is_floating_point())
                 for k in cached[0]}
        whole = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
        with self.backend.autocast(precision):
            outputs = project(feats)
        total, terms = self._objective(outputs, whole)
        total.backward()
        after = self.backend.rng_state()
        start = 0
        for batch, state in zip(batches, states):
            self.backend.set_rng_state(state)
            with self.backend.autocast(precision):
                out = features(batch)
            pairs = [(out[k], feats[k].grad.narrow(0, start, out[k].shape[0])) for k in out
                     if feats[k].grad is not None]
            start += next(iter(out.values())).shape[0] if out else 0
            if pairs:
                torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        self.backend.set_rng_state(after)
        return total.detach(), {k: v.detach() for k, v in terms.items()}

    def _objective(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The losses over the global batch: a field the objective reads holds every process's
        rows (contrastive negatives span the global batch; gradients flow back to each
        process's own rows).  Under SPMD the step holds the global batch already."""
        return self.objective(_Gathered(outputs, self.backend), _Gathered(batch, self.backend))

    def _update_health(self, finite: torch.Tensor, total: torch.Tensor, terms: dict) -> None:
        self.step_t = self.step_t + 1
        newly_bad = (~finite) & (self.bad_step < 0)
        self.bad_step = torch.where(newly_bad, self.step_t, self.bad_step)
        values = torch.stack([total.float()] + [terms[k].float() for k in self.spec.losses.terms])
        self.bad_values = torch.where(newly_bad, values, self.bad_values)
        self.skipped_t = self.skipped_t + (~finite).long()

    # == running ===============================================================
    def run(self) -> Result:
        from .tracking import Trackers
        self.setup()
        self.trackers = Trackers(self.spec, self.host, str(self.run_dir),
                                 disabled=not self.use_trackers or not self.backend.is_main_process)
        hook = self.trackers.hook
        status, code, error = "failed", 1, None
        self.t_start = time.perf_counter()
        self.start_step = self.step
        try:
            with signals.handled(self._on_signal):
                try:
                    hook.vattfw_run_start(spec=self.spec, run_dir=str(self.run_dir))
                    if self.init_report is not None:
                        hook.vattfw_model_init(report=self.init_report.as_dict())
                    self._loop()
                    status, code = ("interrupted", 128 + self.stop_signal) if self.stop_signal else ("finished", 0)
                except (TrainingStopped, ckpt.CheckpointError) as exc:
                    error = str(exc)
        finally:
            summary = self._summary()
            if error:
                summary["error"] = error
            try:
                hook.vattfw_run_end(status=status, summary=summary)
            finally:
                self.trackers.close()
        if error:
            from rich.markup import escape
            self._print(f"[red]error:[/red] {escape(error)}", every_process=True)
        if self.stop_signal:
            self._print(f"stopped by {signal.Signals(self.stop_signal).name} at step {self.step}; "
                        f"checkpoint {self.last_checkpoint}; resume with the same command")
        cache = self.backend.compile_cache_stats() if self.backend is not None else {}
        if cache.get("unreadable"):
            self.warn(f"the compile cache in {cache['dir']} gave {cache['unreadable']} entries this runtime "
                       f"could not reload (compiled again); run.compile_cache: auto keeps it off where that happens")
        return Result(status, self.step, code, summary, self.losses, self.backend.is_main_process)

    def _loop(self) -> None:
        spec = self.spec
        total_steps, acc = spec.train.steps, spec.train.grad_accumulation
        compiled = self.backend.compile(self._train_step)
        device_batches = self.backend.device_loader(self.tracked, self.specs if self.backend.spmd else None)
        self.meter = Meter(spec.train.global_batch_size, self._peak_flops())
        progress = self._progress()
        self.meter.mark(self.step, time.perf_counter(), self.backend.compile_count())
        with device_batches as device_iter, progress:
            while self.step < total_steps and not self._stopping():
                try:
                    batches = [next(device_iter) for _ in range(acc)]
                except StopIteration:
                    raise self._data_failed() from None
                lr = max(self.schedule(self.step), LR_FLOOR)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr * g.get("lr_scale", 1.0)
                if self.meter.flops_per_step is None:
                    out = self.meter.first_step(compiled, batches, self._flops_probe, self.warn)
                else:
                    out = compiled(batches)
                self.step += 1
                self.consumed += acc
                if self.step % spec.train.log_every == 0 or self.step == total_steps or self.step == 1:
                    self.backend.after_step(self._on_log, (self.step, lr, *out, self.skipped_t, self.bad_step,
                                                           self.bad_values))
                progress.advance(self.step)
                if self.write_checkpoints and self.step % spec.checkpoint.every_steps == 0 and self.step < total_steps:
                    self._checkpoint()
                every = spec.eval.every_steps
                if every and spec.eval.evaluators and self.step % every == 0 and self.step < total_steps:
                    self._evaluate()
            self.backend.sync()  # runs the last step's closures
            self._check_health()
            if self.write_checkpoints and (self.step > self.start_step or not self.resume_from):
                self._checkpoint()
            if spec.eval.evaluators and not self.stop_signal and self.evaluate_at_end:
                self._evaluate()
        self.progress_bar = None

    def _data_failed(self) -> BaseException:
        """The loader stopped: checkpoint the steps done, then the exception to end the run with.
        A DataError (storage outage after retries, every sample bad) becomes one line, exit 1;
        a UserError stays one (exit 2); anything else is a bug and keeps its traceback."""
        exc = self.tracked.error
        if self.write_checkpoints and self.step > self.start_step:
            self._checkpoint()
        if exc is not None and not isinstance(exc, DataError):
            return exc
        what = f"{type(exc).__name__}: {' '.join(str(exc).split())}" if exc else "the data loader ended"
        kept = f"checkpoint {self.checkpoints.latest()}"
        return TrainingStopped(f"reading the training data failed after step {self.step} ({what}); {kept}; "
                               f"resume with the same command once the data is readable")

    # -- closures (host side) ---------------------------------------------------
    def _on_log(self, step: int, lr: float, total, terms, grad_norm, skipped, bad_step, bad_values) -> None:
        speed = self.meter.mark(step, time.perf_counter(), self.backend.compile_count())
        loss = float(total)
        self.losses.append((step, loss))
        metrics = {"loss": loss, **{f"loss/{k}": float(v) for k, v in terms.items()},
                   "lr": lr, "grad_norm": float(grad_norm), "skipped_steps": float(skipped), **speed}
        for reason, n in _skipped_samples(self.loader).items():
            metrics[f"skipped/{reason}"] = float(n)
        self.last_metrics = metrics
        if self.progress_bar is not None:
            self.progress_bar.update(metrics, step)
        self.trackers.hook.vattfw_step_end(step=step, metrics=metrics)
        self._raise_if_bad(int(bad_step), bad_values, int(skipped))

    def _check_health(self) -> None:
        self._raise_if_bad(int(self.bad_step.cpu()), self.bad_values, int(self.skipped_t.cpu()))

    def _raise_if_bad(self, bad_step: int, bad_values, skipped: int) -> None:
        t = self.spec.train
        if t.nan_policy == "stop" and bad_step >= 0:
            values = [float(v) for v in bad_values.cpu()]
            terms = ", ".join(f"{k}={v}" for k, v in zip(["loss", *self.spec.losses.terms], values))
            kept = f"the last good checkpoint is {self.checkpoints.latest()}"
            raise TrainingStopped(f"non-finite loss at step {bad_step} ({terms}); {kept} "
                                  f"(train.nan_policy: skip would skip such steps)")
        if t.nan_policy == "skip" and skipped > t.max_skipped_steps:
            raise TrainingStopped(f"{skipped} steps had a non-finite loss or gradient, more than "
                                  f"train.max_skipped_steps={t.max_skipped_steps}")

    def _evaluate(self) -> None:
        from .evaluate import run_evaluators
        self.backend.sync()
        self._check_health()
        start = time.perf_counter()
        rng = rng_state(self.backend)  # training draws the same masks whether it evaluated or not
        compiled = self.backend.compile_count()
        try:
            results = run_evaluators(self.model, self.spec, self.host)
        finally:
            restore_rng(rng, self.backend)
            self.eval_compiles += self.backend.compile_count() - compiled
        self.eval_results = {f"eval/{k}": float(v) for k, v in results.items()}
        self.eval_results["eval/seconds"] = time.perf_counter() - start
        self.trackers.hook.vattfw_eval_end(step=self.step, results=self.eval_results)
        self._print(f"step {self.step} eval: " + ", ".join(f"{k[5:]} {v:.4g}" for k, v in self.eval_results.items()))

    # -- checkpoints ------------------------------------------------------------
    def _checkpoint(self) -> None:
        self.backend.sync()
        self._check_health()
        data = self.tracked.state_after(self.consumed) if self.consumed else self.meta.get("data")
        path = self.checkpoints.save(self.step, self.model, self.optimizer, data, int(self.skipped_t.cpu()), self.sizes)
        self.trackers.hook.vattfw_checkpoint_saved(step=self.step, path=path)

    # -- signals ----------------------------------------------------------------
    def _stopping(self) -> bool:
        """A stop signal seen by any process stops every process after the same step."""
        if self.backend.any_process(bool(self.stop_signal)) and not self.stop_signal:
            self.stop_signal = signal.SIGTERM
        return bool(self.stop_signal)

    def _on_signal(self, signum, frame):
        if self.stop_signal:  # a second signal: stop now
            raise KeyboardInterrupt
        self.stop_signal = signum

    # -- output -----------------------------------------------------------------
    def _progress(self):
        from .progress import ProgressView
        # one process speaks for the run: under torchrun every rank logs the same global loss
        self.progress_bar = ProgressView(self.spec.train.steps, self.step, console=self.console,
                                         enabled=self.show_progress and self.backend.is_main_process)
        return self.progress_bar

    def _peak_flops(self) -> float | None:
        per_device = self.spec.train.peak_tflops_per_device
        if per_device:
            return per_device * 1e12 * self.devices
        if self.backend.on_host_cpu and self.backend.is_main_process:
            from .peak import host_peak_flops  # the (virtual) CPU devices share the host's cores
            return host_peak_flops()  # measured once per machine, all cores: MFU comparable across runs
        return None

    def _summary(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t_start
        summary: dict[str, Any] = {"step": self.step, "steps_run": self.step - self.start_step,
                                   "wall_s": round(wall, 2)}
        if self.losses:
            summary["first_loss"] = self.losses[0][1]
            summary["final_loss"] = self.losses[-1][1]
        if self.meter is not None:
            summary.update(self.meter.summary())
        if self.backend is not None:
            summary["compiles"] = self.backend.compile_count() - self.compiles_at_start - self.eval_compiles
            if self.eval_compiles:
                summary["eval_compiles"] = self.eval_compiles
            cache = self.backend.compile_cache_stats()
            if cache:
                summary["compile_cache"] = (f"{cache['hits']} hits, {cache['misses']} misses, "
                                            f"{cache['unreadable']} unreadable in {cache['dir']}")
        if self.skipped_t is not None:
            summary["skipped_steps"] = int(self.skipped_t.cpu())
        if self.loader is not None:
            summary["skipped_samples"] = sum(_skipped_samples(self.loader).values())
        summary.update(self.eval_results)
        summary["checkpoint"] = self.last_checkpoint
        summary["run_dir"] = str(self.run_dir)
        return summary

    def warn(self, line: str) -> None:
        """One warning line on stderr, from process 0 only (evaluators training on this trainer
        report through it too)."""
        from rich.markup import escape
        self._print(f"[yellow]warning:[/yellow] {escape(line)}")

    def _print(self, text: str, every_process: bool = False) -> None:
        """One line on stderr from process 0 only, or (``every_process``: a fatal error, which may
        be this process's alone) from any process, naming it."""
        if self.backend is not None and not self.backend.is_main_process:
            if not every_process:
                return  # one process speaks for the run
            text = f"process {self.backend.process_index}: {text}"
        from rich.console import Console
        (self.console or Console(stderr=True)).print(text, soft_wrap=True)  # one message, one line

    # == dry run ===============================================================
    def dry_run(self) -> dict[str, Any]:
        """Build, trace and compile one step with the real shapes; execute nothing."""
        self.setup(dry_run=True)
        acc = self.spec.train.grad_accumulation
        first = self.tracked.peek()
        cpu_batches = [first] * acc
        batches = [{k: self.backend.to_device(v, self.specs[k] if self.backend.spmd else None)
                    for k, v in self.tracked.lifted(b).items()} for b in cpu_batches]
        from torch.utils.flop_counter import FlopCounterMode
        t0 = time.perf_counter()
        with FlopCounterMode(display=False) as counter:
            out = self._train_step(batches)
        tensors = [out[0], *out[1].values(), out[2], *self.params, self.bad_step, self.skipped_t]
        tensors += [v for st in self.optimizer.state.values() for v in st.values()
                    if isinstance(v, torch.Tensor) and v.device.type == self.device.type]
        compiled_before = self.backend.compile_count()
        analysis = self.backend.warm_up(tensors)
        info = {
            "devices": self.devices, "mesh": self.sizes,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "trainable": sum(p.numel() for p in self.params),
            "micro_batch": self.micro, "grad_accumulation": acc,
            "flops_per_step": counter.get_total_flops(),
            "state_bytes_per_device": per_device_bytes(self.model, self.plan, self.sizes, 2),
            "memory_per_device": self.backend.memory_per_device() or _analysed_bytes(analysis),
            "compiles": self.backend.compile_count() - compiled_before,
            "trace_and_compile_s": round(time.perf_counter() - t0, 2),
            "batch": {k: f"{tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}" for k, v in first.items()},
        }
        return info


def synthetic_batch(spec: Any, batch: int) -> dict[str, torch.Tensor]:
    """A batch of the shapes and dtypes the data loader would make for ``spec`` (zeros)."""
    from ..data.pipeline import Sampler
    shapes = Sampler(spec.data, "train").shapes
    out = {"video": torch.zeros(batch, shapes.frames, shapes.size, shapes.size, 3),
           "audio": torch.zeros(batch, shapes.audio),
           "text": torch.ones(batch, shapes.candidates, shapes.words, dtype=torch.int64),
           "text_mask": torch.ones(batch), "audio_mask": torch.ones(batch)}
    if shapes.classes:
        out["labels"] = torch.zeros(batch, shapes.classes)
    return {k: v for k, v in out.items() if k.split("_")[0] in spec.model.tokenizers or k.endswith("mask")
            or k == "labels"}


def _analysed_bytes(analysis: dict[str, float]) -> int | None:
    """Peak bytes of the compiled step on one device, from XLA's memory analysis:
    inputs + outputs - aliased (updated in place) + intermediates + program."""
    if not analysis:
        return None
    gb = (analysis.get("inputs", 0) + analysis.get("outputs", 0) - analysis.get("aliased", 0)
          + analysis.get("intermediates", 0) + analysis.get("program", 0))
    return int(gb * 2 ** 30)


def _split_model(model: torch.nn.Module) -> tuple[Callable, Callable]:
    """(per-clip features, batch-level projection) for cached accumulation: VATTModel's
    ``features`` / ``project``.  A model without them is one per-clip function (any BatchNorm
    inside it then sees micro-batches)."""
    features, project = getattr(model, "features", None), getattr(model, "project", None)
    if callable(features) and callable(project):
        return features, project
    return model, (lambda outputs: outputs)


def _skipped_samples(loader: Any) -> dict[str, int]:
    fn = getattr(loader, "skipped", None)
    return dict(fn()) if fn else {}
