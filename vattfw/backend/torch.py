"""Eager PyTorch + torch.distributed behind the :class:`vattfw.backend.Backend` interface.

One process per device.  Without a launcher it is one process on one device (CUDA when
present, else the CPU); under ``torchrun`` (``WORLD_SIZE`` > 1) it joins the process group
from the environment: NCCL on CUDA, gloo on the CPU.  The spec's mesh becomes a
``DeviceMesh`` with axes (data, fsdp, tensor), ranks laid out row-major, so the processes of
one tensor-parallel group are neighbours (one node):

* tensor: the plan's column/row-parallel Linears through DTensor ``parallelize_module``
  (the same plan as the XLA path), plus per-head embeddings (T5's relative bias);
* data x fsdp: FSDP2 ``fully_shard`` on that 2-D sub-mesh, every transformer block and the
  root (fsdp = 1: replicated over data, i.e. DDP with FSDP2's gradient reduction; data = 1:
  ZeRO-3 over fsdp; both: HSDP);
* the batch: each (data, fsdp) coordinate loads its rows of every global batch
  (:attr:`TorchBackend.data_shard`); the losses see the global batch through
  :meth:`TorchBackend.gather_batch` (all-gather whose backward sums the gradients and hands
  each process its rows); BatchNorm normalises with global statistics (:class:`GlobalBatchNorm`).

Every process computes the same loss on the gathered global batch and back-propagates it,
so the gradient reaching each process's rows is (process count) x the true one; the
gradient reduction averages over those processes, which cancels it: the update equals the
single-process update at the same global batch.

``run.compile: optimized`` compiles every transformer block with ``torch.compile``; the
step itself (backward, optimiser) stays eager.  Checkpoints: :mod:`vattfw.backend.torch_checkpoint`.
"""
from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import hashlib
import json
import os
import re
import socket
import sys
import time
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn

AXES = ("data", "fsdp", "tensor")
# A collective that waits longer than this fails (a peer that hangs without dying); a peer
# that dies is noticed at once (gloo/NCCL see the socket close; torchrun stops the rest).
TIMEOUT_S = float(os.environ.get("VATTFW_DIST_TIMEOUT_S", "600"))


class TorchBackend:
    name = "torch"

    def __init__(self, compile: str = "auto") -> None:
        self.compiled = compile == "optimized"
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        self._device = torch.device("cuda", local) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(self._device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=TIMEOUT_S))
            atexit.register(_shut_down)
            _report_lost_peers(self.rank, self.world)
        # Host-side agreement (stop signals, checkpoint outcomes) on CPU tensors: no device sync.
        self._host = dist.new_group(backend="gloo") if cuda and self.world > 1 else None
        self.mesh = None
        self._batch_group = None
        self._shard = (0, 1)
        self._sizes: dict[str, int] = {}

    # -- processes and mesh ------------------------------------------------------
    def device_count(self) -> int:
        return self.world

    @property
    def process_index(self) -> int:
        return self.rank

    @property
    def process_count(self) -> int:
        return self.world

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    @property
    def data_shard(self) -> tuple[int, int]:
        return self._shard

    def start(self, mesh_shape: dict[str, int]) -> None:
        self._sizes = {a: mesh_shape.get(a, 1) for a in AXES}
        tp = self._sizes["tensor"]
        self._shard = (self.rank // tp, self.world // tp)  # row-major: tensor is the fastest axis
        if self.world == 1:
            return
        from torch.distributed.device_mesh import init_device_mesh
        self.mesh = init_device_mesh(self._device.type, tuple(self._sizes[a] for a in AXES), mesh_dim_names=AXES)
        if self.world // tp > 1:
            self._batch_group = self.mesh["data", "fsdp"]._flatten("batch").get_group()

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def spmd(self) -> bool:
        return False  # each process runs its own program on its own rows

    @property
    def on_host_cpu(self) -> bool:
        return self._device.type == "cpu"

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier(group=self._host)

    def any_process(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        if self._host is None and self._device.type != "cpu":
            t = t.to(self._device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._host)
        return bool(t.item())

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every process's ``obj`` (picklable), in rank order."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self._host)
        return out

    # -- model and data ----------------------------------------------------------
    def prepare_model(self, model: nn.Module, plan: Any) -> nn.Module:
        model = model.to(self._device)
        blocks = _blocks(model, plan)
        if self._batch_group is not None:
            use_global_batch_norm(model, self._batch_group)
        if self._sizes.get("tensor", 1) > 1:
            _parallelize(model, plan, self.mesh["tensor"])
        if self.compiled:
            for block in blocks or [model]:
                block.compile()
        if self._batch_group is not None:
            from torch.distributed.fsdp import fully_shard
            dp = self.mesh["data", "fsdp"]  # 2-D: replicate over data, shard over fsdp (HSDP)
            for block in blocks:
                fully_shard(block, mesh=dp)
            fully_shard(model, mesh=dp)
        return model

    def shard(self, tensor: torch.Tensor, spec: tuple) -> None:
        pass  # prepare_model placed the parameters; optimiser state follows them

    def sharding_of(self, tensor: torch.Tensor) -> str:
        from torch.distributed.tensor import DTensor
        if isinstance(tensor, DTensor):
            names = tensor.device_mesh.mesh_dim_names or ()
            return ", ".join(f"{n}:{p}" for n, p in zip(names, tensor.placements))
        return "replicated"

    def gather_batch(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._batch_group is None:
            return tensor
        return _GatherRows.apply(tensor, self._batch_group)

    @contextlib.contextmanager
    def device_loader(self, batches: Iterable[dict], specs: dict[str, tuple] | None) -> Iterator[Iterator[dict]]:
        pin = self._device.type == "cuda"

        def moved():
            for batch in batches:
                yield {k: (v.pin_memory() if pin else v).to(self._device, non_blocking=pin) for k, v in batch.items()}
        yield moved()

    def to_device(self, tensor: torch.Tensor, spec: tuple | None = None) -> torch.Tensor:
        return tensor.to(self._device)

    def optimizer_kernels(self) -> dict[str, bool]:
        if self._sizes.get("tensor", 1) > 1 and self._batch_group is None:
            return {"foreach": False}  # DTensor and plain parameters side by side: no grouped kernels
        # fused: one kernel per step on CUDA; foreach (grouped tensor ops) on the CPU
        return {"fused": True} if self._device.type == "cuda" else {"foreach": True}

    def total_norm(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        from torch.distributed.tensor import DTensor
        groups: dict[Any, list[torch.Tensor]] = {}
        for t in tensors:  # one reduction per mesh the gradients live on
            key = (t.device_mesh, tuple(t.placements)) if isinstance(t, DTensor) else None
            groups.setdefault(key, []).append(t)
        squares = []
        for group in groups.values():
            norm = torch.nn.utils.get_total_norm(group, 2.0)
            if isinstance(norm, DTensor):
                norm = norm.full_tensor()
            squares.append(norm.float() ** 2)
        return torch.stack(squares).sum().sqrt()

    # -- compile and run -----------------------------------------------------------
    def compile(self, fn: Callable) -> Callable:
        return fn  # eager step; run.compile: optimized compiled the blocks in prepare_model

    def warm_up(self, tensors: list[torch.Tensor]) -> dict[str, float]:
        return {}  # nothing is compiled ahead of running

    def after_step(self, fn: Callable, args: tuple = ()) -> None:
        fn(*args)  # eager: the step's values exist already

    def sync(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def autocast(self, precision: str):
        if precision == "bf16":
            return torch.autocast(self._device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- metrics -------------------------------------------------------------------
    def compile_count(self) -> int:
        if not self.compiled:
            return 0
        from torch._dynamo.utils import counters
        return int(counters["stats"]["unique_graphs"])

    def execute_count(self) -> int:
        return 0

    def compile_cache_stats(self) -> dict[str, Any]:
        return {}  # torch.compile's own on-disk cache is not run.compile_cache's

    def metrics_report(self) -> str:
        if self._device.type == "cuda":
            return torch.cuda.memory_summary(self._device, abbreviated=True)
        return f"torch {torch.__version__} on {self._device}, process {self.rank} of {self.world}"

    def memory_per_device(self) -> int | None:
        if self._device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self._device))
        return None

    # -- RNG -------------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        # Each process its own stream (dropout / DropToken masks of its own rows).
        torch.manual_seed(seed + 1_000_003 * self.rank)

    def rng_state(self) -> Any:
        mine = {"cpu": _b64(torch.get_rng_state())}
        if self._device.type == "cuda":
            mine["cuda"] = _b64(torch.cuda.get_rng_state(self._device))
        return self.all_gather_object(mine)

    def set_rng_state(self, state: Any) -> None:
        if isinstance(state, list) and len(state) == self.world:
            mine = state[self.rank]
            torch.set_rng_state(_unb64(mine["cpu"]))
            if "cuda" in mine and self._device.type == "cuda":
                torch.cuda.set_rng_state(_unb64(mine["cuda"]), self._device)
            return
        # Another process count (or another backend's state): a fresh stream per process,
        # still a function of the checkpoint, so the resumed run is reproducible.
        digest = hashlib.sha256(repr(state).encode()).digest()
        torch.manual_seed(int.from_bytes(digest[:7], "little") + 1_000_003 * self.rank)

    # -- checkpoints -----------------------------------------------------------------
    def save_checkpoint(self, root, step, model, optimizer, meta, keep_last):
        from .torch_checkpoint import save
        return save(self, root, step, model, optimizer, {**meta, "format": self.name, "processes": self.world},
                    keep_last)

    def open_checkpoint(self, path):
        from .torch_checkpoint import DcpCheckpoint
        return DcpCheckpoint(path)


class _GatherRows(torch.autograd.Function):
    """all-gather along dim 0; backward: the summed gradient of this process's rows."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        world = dist.get_world_size(group)
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x, group=group)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        group = ctx.group
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=group)  # every process's loss reached every row
        return grad.chunk(dist.get_world_size(group))[dist.get_rank(group)].contiguous(), None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (SyncBatchNorm
    semantics, on any process-group backend): mean and variance from all-reduced sums, two
    passes for the variance, gradients through the all-reduces.  Installed by changing the
    class of an existing BatchNorm, so parameter names and buffers stay as they were."""

    group = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_batch = self.training or not self.track_running_stats
        if not use_batch or self.group is None:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = all_reduce(torch.full((1,), xf.numel() / xf.shape[1], device=x.device), group=self.group)
        mean = all_reduce(xf.sum(dims), group=self.group) / count
        var = all_reduce(((xf - mean.view(shape)) ** 2).sum(dims), group=self.group) / count
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var.dtype))
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def use_global_batch_norm(model: nn.Module, group) -> None:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
            module.__class__ = type(f"Global{type(module).__name__}", (GlobalBatchNorm, type(module)), {})
            module.group = group


def _blocks(model: nn.Module, plan: Any) -> list[nn.Module]:
    """The transformer blocks: the modules two levels above the plan's parallel Linears
    (``...layers.3`` of ``...layers.3.attn.q``), outermost first, each once."""
    names = sorted({n.rsplit(".", 2)[0] for n in [*plan.column, *plan.row] if n.count(".") >= 2})
    found = dict(model.named_modules())
    return [found[n] for n in names if n in found]


def _parallelize(model: nn.Module, plan: Any, mesh) -> None:
    """Column-/row-parallel Linears by the plan; an Embedding with one column per attention
    head next to the attention it feeds (T5's relative position bias) is split by head like
    the q/k/v columns, so each process adds the bias of its own heads."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
    layout: dict[str, Any] = {n: ColwiseParallel() for n in plan.column}
    layout.update({n: RowwiseParallel() for n in plan.row})
    for name, module in model.named_modules():
        heads = {m.heads for m in module.modules() if isinstance(getattr(m, "heads", None), int)}
        for child, sub in module.named_children():
            if isinstance(sub, nn.Embedding) and sub.embedding_dim in heads:
                layout[f"{name}.{child}" if name else child] = ColwiseParallel()
    parallelize_module(model, mesh, layout)


# What gloo / NCCL / c10d raise inside a collective whose peer died or stopped answering.
_LOST_PEER = re.compile(r"peer|Connection (reset|closed|refused)|Broken pipe|remote process|"
                        r"timed? ?out|aborted|Socket Timeout", re.I)


def _report_lost_peers(rank: int, world: int) -> None:
    """When a process dies (kill -9, OOM), the others fail in their next collective with the
    transport's error (gloo: "Read error [127.0.0.1]:41234: Connection reset by peer") deep in
    the step.  Each process leaves its host and pid in the rendezvous store, so such an error
    ends this process with one line naming the processes that are gone, not a traceback."""
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(f"vattfw/process/{rank}", json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    except Exception:  # noqa: BLE001 - no store to read back: the launcher's report has to do
        store = None
    previous = sys.excepthook

    def hook(kind, exc, tb):
        if not isinstance(exc, RuntimeError) or not _LOST_PEER.search(str(exc)):
            return previous(kind, exc, tb)
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: rank {rank} of {world} stops: {_gone(store, rank, world)} ({type(exc).__name__}: "
              f"{first[-160:]})", file=sys.stderr, flush=True)
    sys.excepthook = hook


def _gone(store, rank: int, world: int) -> str:
    """Which other processes have exited, as far as this host can tell."""
    dead, elsewhere = [], []
    here = socket.gethostname()
    for other in range(world):
        if other == rank:
            continue
        try:
            store.set_timeout(datetime.timedelta(seconds=5))  # the store may have died with its host
            info = json.loads(store.get(f"vattfw/process/{other}"))
        except Exception:  # noqa: BLE001
            elsewhere.append(other)
            continue
        if info["host"] != here:
            elsewhere.append(other)
        elif not _alive(int(info["pid"])):
            dead.append(other)
    if dead:
        names = ", ".join(f"rank {r}" for r in dead)
        return f"{names} exited (killed or crashed: its own output and the launcher's report say how)"
    where = f" (ranks {', '.join(map(str, elsewhere))} run on other hosts)" if elsewhere else ""
    return ("another process of this run stopped answering during a collective" + where +
            "; the launcher's report (torchrun: 'Root Cause') names it")


def _alive(pid: int, wait_s: float = 1.0) -> bool:
    """False once ``pid`` is exiting or gone.  Its sockets close early in its exit, so the
    peer's error can come before it is a zombie: its memory already released (vsize 0) says
    the same; a short wait covers the rest."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if fields[0] in "ZX" or fields[20] == "0":  # state; vsize
                return False
        except FileNotFoundError:
            return False
        except (OSError, IndexError):  # no /proc: ask the kernel (a zombie counts as alive here)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                pass
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode()


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)


def _shut_down() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
