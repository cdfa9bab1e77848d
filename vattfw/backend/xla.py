"""torch_xla behind the :class:`vattfw.backend.Backend` interface (PJRT; CPU, TPU or GPU).

Facts this relies on (measured on torch_xla 2.9, see shared/reference/stack.md):
``xr.use_spmd()`` must run before the first XLA tensor exists; with fixed shapes a
compiled step is traced each call but compiled only when its graph is new (step 0; and
step 1 when optimiser state appears there: the engine makes Adam's state beforehand); Python scalars other than 0 and 1 enter the graph as
data, so a changing learning rate does not recompile, but an exact 0.0 does (the engine
floors it, see :func:`vattfw.engine.trainer.LR_FLOOR`).
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterable, Iterator

import torch

os.environ.setdefault("PJRT_DEVICE", "CPU")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class XlaBackend:
    name = "xla"

    def __init__(self, compile: str = "optimized", cache: str = "off", cache_dir: str = "~/.cache/vattfw/xla") -> None:
        if compile == "fast" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
            # Read when the runtime starts (first device query), so set before that.
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
        import torch_xla  # noqa: F401  (import cost ~2.4 s: only when a run starts)
        self._cache_dir = _open_compile_cache(cache, cache_dir)
        self._mesh = None
        self._spmd = False
        self._names: tuple[str, ...] = ()
        self._plan = None

    # -- runtime and mesh ------------------------------------------------------
    def device_count(self) -> int:
        import torch_xla.runtime as xr
        return int(xr.global_runtime_device_count())

    def start(self, mesh_shape: dict[str, int]) -> None:
        import numpy as np
        import torch_xla.distributed.spmd as xs
        import torch_xla.runtime as xr
        total = 1
        for size in mesh_shape.values():
            total *= size
        self._names = tuple(mesh_shape)
        if total > 1:
            # SPMD mode is process-wide and set once: called again (another run in this process),
            # use_spmd only warns that its env flag is deprecated, and after a non-SPMD run it would
            # force every existing tensor onto the SPMD device ("Replicating tensors ...").
            if not xr.is_spmd():
                xr.use_spmd()
            self._spmd = True
            self._mesh = xs.Mesh(np.arange(total), tuple(mesh_shape.values()), self._names)

    @property
    def process_index(self) -> int:
        forced = _forced_process()
        if forced:
            return forced[0]
        import torch_xla.runtime as xr
        return int(xr.process_index())

    @property
    def process_count(self) -> int:
        forced = _forced_process()
        if forced:
            return forced[1]
        import torch_xla.runtime as xr
        return int(xr.process_count())

    @staticmethod
    def _runtime_hosts() -> int:
        """Processes of the XLA runtime itself (a forced process count is not one runtime)."""
        import torch_xla.runtime as xr
        return int(xr.process_count())

    @property
    def is_main_process(self) -> bool:
        return self.process_index == 0

    @property
    def data_shard(self) -> tuple[int, int]:
        # One SPMD program per host sees the global batch; each host loads its share of it.
        return self.process_index, self.process_count

    def barrier(self) -> None:
        if _forced_process():
            _file_barrier(*_forced_process())
        elif self.process_count > 1:
            import torch_xla.core.xla_model as xm
            xm.rendezvous("vattfw-barrier")

    def any_process(self, flag: bool) -> bool:
        return flag  # one host: its own signal is everyone's

    @property
    def device(self) -> torch.device:
        import torch_xla
        return torch_xla.device()

    @property
    def on_host_cpu(self) -> bool:
        return os.environ.get("PJRT_DEVICE", "CPU") == "CPU"

    @property
    def spmd(self) -> bool:
        return self._spmd

    def shard(self, tensor: torch.Tensor, spec: tuple) -> None:
        if self._spmd and any(s is not None for s in spec):
            import torch_xla.distributed.spmd as xs
            xs.mark_sharding(tensor, self._mesh, spec)

    def prepare_model(self, model: torch.nn.Module, plan: Any) -> torch.nn.Module:
        # BatchNorm normalises over the global batch (the SPMD program holds it); only its
        # running variance needs PyTorch's update (EagerRunningStats).
        use_eager_running_stats(model)
        model = model.to(self.device)
        for name, p in model.named_parameters():
            self.shard(p, plan.specs[name])
        self._plan = plan
        return model

    def gather_batch(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor  # the step already holds the global batch

    def optimizer_kernels(self) -> dict[str, bool]:
        return {}  # torch's default (its per-tensor loop traces into the one step graph)

    def total_norm(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in tensors]))

    def sharding_of(self, tensor: torch.Tensor) -> str:
        import torch_xla
        return torch_xla._XLAC._get_xla_sharding_spec(tensor) or "replicated"

    @contextlib.contextmanager
    def device_loader(self, batches: Iterable[dict], specs: dict[str, tuple] | None,
                      prefetch: int = 2) -> Iterator[Iterator[dict]]:
        import torch_xla.distributed.parallel_loader as pl
        sharding = None
        if self._spmd and specs is not None:
            import torch_xla.distributed.spmd as xs
            # minibatch: on several hosts each one uploads only its rows and torch_xla assembles the
            # global batch from the per-host pieces (no host holds the global batch).
            hosts = self._runtime_hosts() > 1
            sharding = {k: xs.ShardingSpec(self._mesh, s, minibatch=hosts) for k, s in specs.items()}
        # Small prefetch: the loader's iterator runs ahead by at most this many batches,
        # which bounds the data states the engine keeps for exact resume.  ParallelLoader is
        # what MpDeviceLoader wraps, used directly for its close(): its upload threads run
        # ahead of the step, and a process that exits while one is inside the runtime aborts
        # ("terminate called without an active exception", about one exit in three).
        loader = pl.ParallelLoader(batches, [self.device], input_sharding=sharding,
                                   loader_prefetch_size=prefetch, device_prefetch_size=1)
        try:
            yield loader.per_device_loader(self.device)
        finally:
            loader.close()

    def to_device(self, tensor: torch.Tensor, spec: tuple | None = None) -> torch.Tensor:
        out = tensor.to(self.device)
        if spec is not None:
            self.shard(out, spec)
        return out

    # -- compile and run -------------------------------------------------------
    def compile(self, fn: Callable) -> Callable:
        import torch_xla
        # full_graph: a hidden host sync inside the step is an error, not a silent slowdown.
        return torch_xla.compile(fn, full_graph=True)

    def warm_up(self, tensors: list[torch.Tensor]) -> dict[str, float]:
        """Compile the graph that computes ``tensors`` without executing it; return XLA's
        post-compilation memory analysis (GB per device: inputs, outputs, aliased,
        intermediates, program), read from its debug output when PT_XLA_DEBUG_LEVEL is set."""
        import re
        import sys
        import tempfile
        import torch_xla
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)  # the analysis is printed by C++ on fd 2
            try:
                torch_xla._XLAC._xla_warm_up_cache(tensors, [])
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
        found = {}
        for key, name in (("Graph input size", "inputs"), ("Graph output size", "outputs"),
                          ("Aliased Input size", "aliased"), ("Intermediate tensor size", "intermediates"),
                          ("Compiled program size", "program")):
            m = re.findall(rf"{key}: ([0-9.]+) GB", text)
            if m:
                found[name] = float(m[-1])
        return found

    def after_step(self, fn: Callable, args: tuple = ()) -> None:
        import torch_xla.core.xla_model as xm
        xm.add_step_closure(fn, args=args)

    def sync(self) -> None:
        """Run what is pending, leaving the device RNG where it was.

        torch_xla moves the device seed on every sync, random ops or not, so a host-side
        sync (checkpoint, health check, evaluation, the end of the loop) would shift every
        later dropout / DropToken mask: a run that checkpointed or was stopped would then
        train on other random draws than one that did not, and resume would not be exact.
        Only the compiled step (whose own sync is inside ``torch_xla.compile``) advances it."""
        import torch_xla
        import torch_xla.core.xla_model as xm
        state = xm.get_rng_state(device=self.device)
        torch_xla.sync()
        xm.set_rng_state(state, device=self.device)

    def autocast(self, precision: str):
        if precision == "bf16":
            return torch.autocast("xla", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- metrics ---------------------------------------------------------------
    @staticmethod
    def _count(metric: str) -> int:
        import torch_xla.debug.metrics as met
        data = met.metric_data(metric)
        return int(data[0]) if data else 0

    def compile_count(self) -> int:
        return self._count("CompileTime")

    def execute_count(self) -> int:
        return self._count("ExecuteTime")

    def metrics_report(self) -> str:
        import torch_xla.debug.metrics as met
        return met.short_metrics_report()

    def compile_cache_stats(self) -> dict[str, Any]:
        if not self._cache_dir:
            return {}
        import torch_xla.debug.metrics as met
        count = {k: int(met.counter_value(f"PersistentCache{k}") or 0) for k in ("Hit", "Miss", "DeserializeFailure")}
        return {"dir": self._cache_dir, "hits": count["Hit"], "misses": count["Miss"],
                "unreadable": count["DeserializeFailure"]}

    def memory_per_device(self) -> int | None:
        import torch_xla.core.xla_model as xm
        try:
            info = xm.get_memory_info(self.device)
        except Exception:  # not supported on the CPU client / SPMD virtual devices
            return None
        return int(info.get("bytes_used", 0)) or None

    # -- checkpoints -------------------------------------------------------------
    def save_checkpoint(self, root, step, model, optimizer, meta, keep_last):
        """One process: ``model.pt`` / ``optimizer.pt`` of CPU tensors (``.cpu()`` gathers each
        sharded tensor).  Several: each writes only the pieces it owns (:mod:`vattfw.checkpoint.shards`),
        since a tensor sharded over other hosts' devices cannot be gathered here.  Either resumes
        on any mesh."""
        from .. import checkpoint as ckpt
        if self.process_count == 1:
            state = {"model": _to_cpu(model.state_dict()), "optimizer": _to_cpu(optimizer.state_dict())}
            return ckpt.save(root, step, state, meta, keep_last)
        from ..checkpoint import shards
        layout, tensors = shards.layout_of(model.state_dict(), optimizer.state_dict())
        pieces = {key: self._owned_pieces(t) for key, t in tensors.items()}
        return shards.save(root, step, {k: v for k, v in pieces.items() if v}, layout, meta, keep_last,
                           (self.process_index, self.process_count), self.barrier)

    def _owned_pieces(self, tensor: torch.Tensor) -> list:
        """[(index, CPU tensor)] of the shards of ``tensor`` this process writes: of the copies of
        each shard, the one torch_xla numbers replica 0, when it lies on this process's devices.
        A tensor without a sharding (replicated, or on the CPU) is written whole by process 0."""
        import torch_xla
        whole = tuple((0, s) for s in tensor.shape)
        spec = torch_xla._XLAC._get_xla_sharding_spec(tensor) if tensor.device.type == "xla" else ""
        if not spec:
            return [(whole, tensor.detach().cpu().clone())] if self.process_index == 0 else []
        data = torch_xla._XLAC._get_local_shards([tensor])[0]
        where = torch_xla._XLAC._get_local_shard_replica_and_indices([tensor])[0]
        out = []
        for (shard, device), (replica, indices) in zip(data, where):
            if replica != 0 or not self._on_my_devices(device):
                continue
            index = whole if indices is Ellipsis else tuple((s.start, s.stop) for s in indices)
            unpadded = shard[tuple(slice(0, b - a) for a, b in index)]  # the last shard may carry padding
            out.append((index, unpadded.detach().cpu().clone()))
        return out

    def _on_my_devices(self, device: str) -> bool:
        """Local shards are this process's own, except under a forced process count, where one
        runtime holds every device: process i then stands for the i-th block of devices."""
        forced = _forced_process()
        if not forced:
            return True
        ordinal = int(device.rsplit(":", 1)[1])
        return ordinal * forced[1] // self.device_count() == forced[0]

    def open_checkpoint(self, path) -> "_FileCheckpoint":
        return _FileCheckpoint(path, self)

    def _shard_optimizer_state(self, model, optimizer) -> None:
        names = {id(p): n for n, p in model.named_parameters()}
        for p, st in optimizer.state.items():
            spec = self._plan.specs.get(names.get(id(p), "")) if self._plan else None
            for v in st.values():
                if spec and isinstance(v, torch.Tensor) and v.device == p.device and v.shape == p.shape:
                    self.shard(v, spec)

    # -- RNG -------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        import torch_xla.core.xla_model as xm
        xm.set_rng_state(seed, device=self.device)

    def rng_state(self) -> Any:
        import torch_xla.core.xla_model as xm
        return int(xm.get_rng_state(device=self.device))

    def set_rng_state(self, state: Any) -> None:
        import torch_xla.core.xla_model as xm
        xm.set_rng_state(int(state), device=self.device)


class _FileCheckpoint:
    """A checkpoint of whole CPU tensors (:func:`vattfw.checkpoint.save`)."""

    def __init__(self, path, backend: XlaBackend):
        import json
        from pathlib import Path
        from .. import checkpoint as ckpt
        from ..errors import Problem, UserError
        try:
            fmt = json.loads((Path(path) / "meta.json").read_text()).get("format")
        except (OSError, ValueError):
            fmt = None  # ckpt.load says what is wrong with it
        if fmt is not None:
            raise UserError(Problem(f"checkpoint {path} was written by the {fmt!r} backend; resume it with "
                                    f"run.backend: {fmt}", "checkpoint.resume"))
        self._state, self.meta = ckpt.load(path)
        self._backend = backend

    def load_model(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self._state["model"])

    def load_optimizer(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        optimizer.load_state_dict(self._state.pop("optimizer"))
        self._backend._shard_optimizer_state(model, optimizer)


def _open_compile_cache(mode: str, folder: str) -> str | None:
    """Turn on the persistent compile cache (run.compile_cache) in ``folder/<torch_xla version>``
    and return that folder, or None when it stays off.  auto = not on the CPU: torch_xla 2.9's
    CPU client writes entries it cannot deserialize (measured: every lookup of a second process
    fails and compiles again).  The cache is process-wide and set before the first computation:
    a backend created after one (a second run in the process) keeps what the first set."""
    import torch_xla
    import torch_xla.runtime as xr
    on = mode == "on" or (mode == "auto" and os.environ.get("PJRT_DEVICE", "CPU").upper() != "CPU")
    if torch_xla._XLAC._xla_computation_cache_is_initialized():
        return os.environ.get("XLA_PERSISTENT_CACHE_PATH") or None
    if not on:
        return None
    from pathlib import Path
    path = Path(folder).expanduser() / torch_xla.__version__
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from ..errors import Problem, UserError
        raise UserError(Problem(f"cannot create the compile cache folder {path}: {exc.strerror}; give a writable "
                                f"folder or set run.compile_cache: off", "run.compile_cache_dir")) from None
    xr.initialize_cache(str(path), readonly=False)
    return str(path)


def _forced_process() -> tuple[int, int] | None:
    """``VATTFW_FORCE_PROCESS=i/n`` (tests only): act as process i of n on one host, to exercise
    the per-host data and checkpoint paths without a pod.  Each such process is its own XLA
    runtime; barriers go through files in ``VATTFW_FORCE_BARRIER`` (a folder all of them share)."""
    value = os.environ.get("VATTFW_FORCE_PROCESS")
    if not value:
        return None
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        from ..errors import Problem, UserError
        raise UserError(Problem(f"VATTFW_FORCE_PROCESS={value!r}: expected INDEX/COUNT with 0 <= INDEX < COUNT"))
    return i, n


_barriers = [0]  # barriers passed by this process: every process passes the same ones in order


def _file_barrier(index: int, count: int, timeout_s: float = 600) -> None:
    import time
    from pathlib import Path
    folder = Path(os.environ.get("VATTFW_FORCE_BARRIER", ""))
    if not folder.is_dir():
        raise RuntimeError("VATTFW_FORCE_PROCESS with a count > 1 needs VATTFW_FORCE_BARRIER=FOLDER (shared)")
    _barriers[0] += 1
    (folder / f"barrier-{_barriers[0]}-{index}").touch()
    deadline = time.monotonic() + timeout_s
    while not all((folder / f"barrier-{_barriers[0]}-{j}").exists() for j in range(count)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"barrier {_barriers[0]}: not every one of {count} processes arrived")
        time.sleep(0.05)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


class EagerRunningStats(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose running statistics are updated as PyTorch eager updates them.
    torch_xla 2.9's batch-norm lowering moves ``running_var`` towards the biased batch variance
    (divided by n), eager PyTorch (and the torch backend's GlobalBatchNorm) towards the unbiased
    one (n - 1): measured, one step of 16 rows, running_var 1.1654 against eager's 1.1831; the
    FAC head's after the 5 steps of tests/engine/test_engine_torch.py up to 2 % apart (0.1 at
    temperature 0.07), so evaluation normalised otherwise than after eager training.  The
    normalisation itself is still torch_xla's; the running averages are updated here, in the
    step's graph.  Installed by changing the class of an existing BatchNorm, so
    parameter names and buffers stay as they were."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.track_running_stats):
            return super().forward(x)
        import torch.nn.functional as F
        y = F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)  # batch statistics
        with torch.no_grad():
            dims = [0, *range(2, x.dim())]
            xf = x.detach().float()
            self.num_batches_tracked.add_(1)
            # momentum None: the cumulative average, 1 / batches seen (a device value: no host read)
            m = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.float()
            self.running_mean.mul_(1 - m).add_(m * xf.mean(dims).to(self.running_mean.dtype))
            self.running_var.mul_(1 - m).add_(m * xf.var(dims, correction=1).to(self.running_var.dtype))
        return y


def use_eager_running_stats(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(module, EagerRunningStats):
            module.__class__ = type(f"Eager{type(module).__name__}", (EagerRunningStats, type(module)), {})
