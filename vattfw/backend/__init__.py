"""The one seam between vattfw and an accelerator runtime.

The engine never imports torch_xla: it asks :func:`get_backend` for an object with the
methods of :class:`Backend` (device, mesh, sharding, compile, step closures, metrics, RNG).
``xla`` (torch_xla / PJRT) is the only implementation today; a plain-torch backend can
stand behind the same interface later (compile -> identity or torch.compile, closures ->
run at once, shardings -> no-ops on one device).
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, Iterable, Iterator, Protocol

import torch


class Backend(Protocol):
    name: str

    def device_count(self) -> int: ...
    def start(self, mesh_shape: dict[str, int]) -> None:
        """Fix the runtime mode (SPMD when the mesh has several devices) before any tensor exists."""
    @property
    def device(self) -> torch.device: ...
    @property
    def spmd(self) -> bool: ...
    def shard(self, tensor: torch.Tensor, spec: tuple) -> None:
        """Annotate ``tensor`` with a partition spec over the mesh axes (names, tuples of names or None)."""
    def sharding_of(self, tensor: torch.Tensor) -> str: ...
    def device_loader(self, batches: Iterable[dict],
                      specs: dict[str, tuple] | None) -> AbstractContextManager[Iterator[dict]]:
        """A context giving an iterator of the batches moved to the device, each field sharded
        by its partition spec; leaving it stops any background transfer."""
    def compile(self, fn: Callable) -> Callable:
        """Compile ``fn`` as one graph per distinct input shape set; calling it runs one step."""
    def after_step(self, fn: Callable, args: tuple = ()) -> None:
        """Run ``fn(*args)`` on host values once the current step's graph has executed."""
    def sync(self) -> None:
        """Run pending device work; the device RNG is left as it was (only steps advance it)."""
    def compile_count(self) -> int: ...
    def execute_count(self) -> int: ...
    def rng_state(self) -> Any: ...
    def set_rng_state(self, state: Any) -> None: ...
    def seed(self, seed: int) -> None: ...
    def memory_per_device(self) -> int | None: ...


def get_backend(name: str = "xla", compile: str = "optimized") -> Backend:
    """``compile``: "optimized" or "fast" (less backend optimisation, quicker compiles);
    takes effect only if this is the first backend of the process."""
    if name == "xla":
        from .xla import XlaBackend
        return XlaBackend(compile)
    from ..errors import Problem, UserError
    raise UserError(Problem(f"unknown backend {name!r}; available: xla", path="run.backend"))
