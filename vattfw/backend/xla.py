"""torch_xla behind the :class:`vattfw.backend.Backend` interface (PJRT; CPU, TPU or GPU).

Facts this relies on (measured on torch_xla 2.9, see shared/reference/stack.md):
``xr.use_spmd()`` must run before the first XLA tensor exists; with fixed shapes a
compiled step is traced each call but compiled only when its graph is new (step 0, and
step 1 when optimiser state appears); Python scalars other than 0 and 1 enter the graph as
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

    def __init__(self, compile: str = "optimized") -> None:
        if compile == "fast" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
            # Read when the runtime starts (first device query), so set before that.
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
        import torch_xla  # noqa: F401  (import cost ~2.4 s: only when a run starts)
        self._mesh = None
        self._spmd = False
        self._names: tuple[str, ...] = ()

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
            xr.use_spmd()
            self._spmd = True
            self._mesh = xs.Mesh(np.arange(total), tuple(mesh_shape.values()), self._names)

    @property
    def device(self) -> torch.device:
        import torch_xla
        return torch_xla.device()

    @property
    def spmd(self) -> bool:
        return self._spmd

    def shard(self, tensor: torch.Tensor, spec: tuple) -> None:
        if self._spmd and any(s is not None for s in spec):
            import torch_xla.distributed.spmd as xs
            xs.mark_sharding(tensor, self._mesh, spec)

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
            sharding = {k: xs.ShardingSpec(self._mesh, s) for k, s in specs.items()}
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

    def memory_per_device(self) -> int | None:
        import torch_xla.core.xla_model as xm
        try:
            info = xm.get_memory_info(self.device)
        except Exception:  # not supported on the CPU client / SPMD virtual devices
            return None
        return int(info.get("bytes_used", 0)) or None

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
