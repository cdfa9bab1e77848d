"""The one seam between vattfw and an accelerator runtime.

The engine never imports torch_xla or torch.distributed: it asks :func:`get_backend` for an
object with the methods of :class:`Backend` and never branches on which one it got.

* ``xla`` (:mod:`vattfw.backend.xla`): torch_xla / PJRT, one process per host, the whole
  train step compiled as one SPMD graph over the mesh (CPU, TPU; GPU deprecated by torch_xla).
* ``torch`` (:mod:`vattfw.backend.torch`): eager PyTorch (optionally ``torch.compile``), one
  process per device under ``torchrun``; the mesh is a ``DeviceMesh`` (FSDP2 / replicate /
  DTensor tensor parallel); checkpoints with ``torch.distributed.checkpoint``.

Two models of a "batch": under XLA SPMD one program sees the global batch, so the
collectives are implicit; under torch.distributed each process sees its own rows, so
contrastive negatives need :meth:`Backend.gather_batch` and BatchNorm needs global statistics
(done inside :meth:`Backend.prepare_model`).  Written against this interface, the engine's
step is the same for both.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import torch

NAMES = ("xla", "torch")


class Checkpoint(Protocol):
    """A complete checkpoint opened for resuming (see :meth:`Backend.open_checkpoint`)."""

    meta: dict[str, Any]

    def load_model(self, model: torch.nn.Module) -> None:
        """Load the weights into ``model`` as built (full, on the CPU, before prepare_model)."""

    def load_optimizer(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Load the optimiser state into ``optimizer`` of the prepared ``model``, resharded onto
        this run's mesh."""


class Backend(Protocol):
    name: str

    # -- processes and mesh ------------------------------------------------------
    def device_count(self) -> int:
        """Devices of the whole run (all processes, all hosts): the mesh's size."""
    @property
    def process_index(self) -> int:
        """This process's index among the run's processes (0 without a launcher)."""
    @property
    def process_count(self) -> int:
        """How many processes run this training (each loads its own rows of every batch)."""
    @property
    def is_main_process(self) -> bool:
        """True in the one process that prints, tracks and writes run-level files."""
    @property
    def data_shard(self) -> tuple[int, int]:
        """(index, count): this process loads rows [index·n, (index+1)·n) of every global batch,
        n = batch / count.  Processes that share rows (tensor parallel) share the index."""
    def start(self, mesh_shape: dict[str, int]) -> None:
        """Fix the runtime mode (SPMD when the mesh has several devices) before any tensor exists."""
    @property
    def device(self) -> torch.device:
        """The device this process computes on."""
    @property
    def spmd(self) -> bool:
        """True when one program holds the global batch and the runtime partitions it (XLA SPMD):
        batch fields are then sharded on upload by their partition specs."""
    def barrier(self) -> None:
        """Wait until every process arrives here."""
    def any_process(self, flag: bool) -> bool:
        """True when ``flag`` is true in any process (a stop signal seen by one process stops
        every process after the same step)."""

    # -- model and data ----------------------------------------------------------
    def prepare_model(self, model: torch.nn.Module, plan: Any) -> torch.nn.Module:
        """Move ``model`` to the device and distribute it by ``plan``
        (:class:`vattfw.engine.mesh.Plan`: a partition spec per parameter, the column- and
        row-parallel Linear names); BatchNorm layers normalise with global batch statistics.
        Returns the module to train (parameter names unchanged)."""
    def shard(self, tensor: torch.Tensor, spec: tuple) -> None:
        """Annotate ``tensor`` with a partition spec over the mesh axes (names, tuples of names or
        None); a no-op where prepare_model placed the parameters itself."""
    def sharding_of(self, tensor: torch.Tensor) -> str:
        """A human-readable description of how ``tensor`` is split over the devices."""
    def gather_batch(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor``'s rows (dim 0 = batch) from every batch shard, in process order, as one
        global-batch tensor whose gradient flows back to each process's own rows.  Identity
        where the step already sees the global batch (XLA SPMD)."""
    def device_loader(self, batches: Iterable[dict],
                      specs: dict[str, tuple] | None) -> AbstractContextManager[Iterator[dict]]:
        """A context giving an iterator of the batches moved to the device, each field sharded
        by its partition spec; leaving it stops any background transfer."""
    def to_device(self, tensor: torch.Tensor, spec: tuple | None = None) -> torch.Tensor:
        """``tensor`` on the device, sharded by ``spec`` when given."""
    def optimizer_kernels(self) -> dict[str, bool]:
        """Keyword options for torch optimisers on this device (``fused`` / ``foreach``);
        empty = torch's default."""
    def total_norm(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """The global L2 norm of ``tensors`` over all their shards, as a 0-d tensor on the device."""

    # -- compile and run -----------------------------------------------------------
    def compile(self, fn: Callable) -> Callable:
        """Compile ``fn`` as one graph per distinct input shape set; calling it runs one step."""
    def warm_up(self, tensors: list[torch.Tensor]) -> dict[str, float]:
        """Compile the graph computing ``tensors`` without running it (dry run); return what the
        compiler reports of its memory (GB per device by kind), or {} when it reports none."""
    def after_step(self, fn: Callable, args: tuple = ()) -> None:
        """Run ``fn(*args)`` on host values once the current step's graph has executed."""
    def sync(self) -> None:
        """Run pending device work; the device RNG is left as it was (only steps advance it)."""
    def autocast(self, precision: str) -> AbstractContextManager:
        """The context the forward pass runs in: bf16 autocast for "bf16", nothing for "fp32"."""

    # -- metrics -------------------------------------------------------------------
    def compile_count(self) -> int:
        """Graphs compiled so far in this process (0 for an eager step)."""
    def execute_count(self) -> int:
        """Compiled graphs executed so far (0 for an eager step)."""
    def metrics_report(self) -> str:
        """The runtime's own counters as text (debugging)."""
    def compile_cache_stats(self) -> dict[str, Any]:
        """The persistent compile cache's folder and its hits, misses and entries it could not
        reload in this process; {} when there is none."""
    def memory_per_device(self) -> int | None:
        """Bytes in use on this process's device, or None where the runtime cannot say."""
    @property
    def on_host_cpu(self) -> bool:
        """True when the devices are this host's CPU cores (MFU then uses a measured CPU peak)."""

    # -- RNG -------------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        """Seed the device RNG (dropout, DropToken) of this process."""
    def rng_state(self) -> Any:
        """The device RNG state, JSON-serialisable, of every process (for checkpoints)."""
    def set_rng_state(self, state: Any) -> None:
        """Restore what :meth:`rng_state` returned (another process count: reseeded per process)."""

    # -- checkpoints -----------------------------------------------------------------
    def save_checkpoint(self, root: Path, step: int, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer, meta: dict[str, Any], keep_last: int) -> Path:
        """Write model and optimiser state and ``meta`` as ``root/step_<step>`` atomically (the
        COMPLETE marker last, after every process wrote its part), keep the newest ``keep_last``;
        called by every process; returns the folder."""
    def open_checkpoint(self, path: Path) -> Checkpoint:
        """A complete checkpoint folder written by this backend, opened for resuming."""


def get_backend(name: str = "xla", compile: str = "auto", cache: str = "off",
                cache_dir: str = "~/.cache/vattfw/xla") -> Backend:
    """``compile`` (run.compile): "auto" (the backend's default: XLA optimized, torch eager),
    "optimized" (XLA: full optimisation; torch: torch.compile), "fast" (XLA: optimisation
    level 0, quicker compiles; torch: eager) or "eager" (torch only).  ``cache`` / ``cache_dir``
    (run.compile_cache, run.compile_cache_dir): XLA's persistent compile cache.  XLA: both take
    effect only if this is the first backend of the process."""
    from ..errors import Problem, UserError
    if name == "xla":
        if compile == "eager":
            raise UserError(Problem("the xla backend always compiles the step; use optimized or fast, or "
                                    "run.backend: torch for eager", "run.compile"))
        from .xla import XlaBackend
        return XlaBackend("optimized" if compile == "auto" else compile, cache, cache_dir)
    if name == "torch":
        from .torch import TorchBackend
        return TorchBackend(compile)
    raise UserError(Problem(f"unknown backend {name!r}; available: {', '.join(NAMES)}", path="run.backend"))


# The backend last started in this process, per name, with its mesh.  What start() sets up is
# process-wide (XLA: SPMD mode, which must be on before the first device tensor and cannot be
# set up twice cleanly; torch: the device mesh's process groups, a collective on every rank), so
# a training run inside another one (a fine-tuning evaluator during periodic evaluation) reuses
# the running backend and does not start it again.
_started: dict[str, tuple[Any, dict[str, int]]] = {}


def start_once(backend: Backend, mesh_shape: dict[str, int]) -> None:
    """``backend.start(mesh_shape)``, unless this very backend already started on that mesh."""
    previous = _started.get(backend.name)
    if previous is not None and previous[0] is backend and previous[1] == dict(mesh_shape):
        return
    backend.start(mesh_shape)
    _started[backend.name] = (backend, dict(mesh_shape))


def backend_for(run: Any) -> Backend:
    """The backend a spec's ``run`` section asks for: the one already running in this process
    under that name (an evaluation inside a training run), else a new one."""
    return running(run.backend) or get_backend(run.backend, run.compile, run.compile_cache, run.compile_cache_dir)


def running(name: str) -> Backend | None:
    """The backend named ``name`` last started in this process (:func:`start_once`), or None."""
    previous = _started.get(name)
    return previous[0] if previous else None


def runtime_process() -> tuple[int, int]:
    """(process index, process count) of the runtime this process runs under: torch.distributed
    when its process group is up (or torchrun's environment), torch_xla's when loaded, else (0, 1)."""
    import os
    import sys
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if "torch_xla" in sys.modules:
        try:
            import torch_xla.runtime as xr
            return int(xr.process_index()), int(xr.process_count())
        except Exception:  # no XLA runtime started in this process: a single host
            pass
    return 0, 1
