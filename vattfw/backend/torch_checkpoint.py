"""Checkpoints of the torch backend: ``torch.distributed.checkpoint`` (DCP), each process
writing its own shards, in the engine's atomic folder layout.

``<root>/step_NNNNNNNNN/``: ``dcp/`` (DCP's files: one or more ``__<rank>_<n>.distcp`` per
process and ``.metadata``), ``dcp_index.pt`` (every DCP file's size and sha256),
``meta.json`` (the engine's meta plus ``format: torch``; its ``files`` name
``dcp_index.pt``, so the engine's size/digest checks cover the index and the index covers
the shards) and ``COMPLETE``.  Written as ``.tmp-step_...-dcp`` by every process; once all
have written (and digested their own files), the main process writes the index, meta.json
and the marker, renames the folder and prunes old ones; every process learns the outcome.
A failure anywhere removes the temporary folder and raises CheckpointError everywhere.

Model weights are saved and loaded by fully-qualified name with their global shapes, so a
checkpoint resumes onto another process count or mesh: the weights are read whole into
the model as built (before it is distributed), the optimiser state straight into its new
shards.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import Problem, UserError

INDEX = "dcp_index.pt"
FORMAT = "torch"


def _digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _states(model, optimizer) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict
    return {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer)}


def save(backend, root: Path, step: int, model, optimizer, meta: dict[str, Any], keep_last: int) -> Path:
    import torch.distributed.checkpoint as dcp
    from .. import checkpoint as ckpt
    root = Path(root)
    final = ckpt.step_dir(root, step)
    tmp = root / f".tmp-{final.name}-dcp"  # one name for every process (pids differ)
    previous = ckpt.latest(root)
    main = backend.is_main_process
    error = ""
    if main:
        try:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "dcp").mkdir(parents=True)
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
    error = _first_error(backend, error)
    mine: dict[str, Any] = {}
    if not error:
        try:
            dcp.save(_states(model, optimizer), storage_writer=dcp.FileSystemWriter(tmp / "dcp", sync_files=True))
            prefix = f"__{backend.process_index}_"
            mine = {p.name: _digest(p) for p in (tmp / "dcp").iterdir() if p.name.startswith(prefix)}
            if main and (tmp / "dcp" / ".metadata").is_file():
                mine[".metadata"] = _digest(tmp / "dcp" / ".metadata")
        except (OSError, RuntimeError) as exc:
            error = f"process {backend.process_index}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    parts = backend.all_gather_object((error, mine))
    error = next((e for e, _ in parts if e), "")
    if main and not error:
        try:
            index = {name: d for _, files in parts for name, d in files.items()}
            torch.save(index, tmp / INDEX)
            meta = {**meta, "step": step, "files": {INDEX: _digest(tmp / INDEX)}}
            _write(tmp / "meta.json", json.dumps(meta, indent=1).encode())
            _write(tmp / ckpt.MARKER, b"ok\n")
            if final.exists():  # the same step written again (a resumed run that ends at once)
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync(root)
            ckpt.prune(root, keep_last)
        except (OSError, RuntimeError) as exc:
            error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    error = _first_error(backend, error)
    if error:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise ckpt.CheckpointError(f"writing the checkpoint for step {step} in {root} failed ({error}); {kept}")
    return final


def _first_error(backend, error: str) -> str:
    """Every process learns the first process's error ("" when none had one)."""
    return next((e for e in backend.all_gather_object(error) if e), "")


def problem(path: Path, verify: bool = True) -> str:
    """What makes ``path`` unusable as a torch-backend checkpoint ("" when intact)."""
    from .. import checkpoint as ckpt
    path = Path(path)
    why = ckpt.problem(path, verify=verify) if hasattr(ckpt, "problem") else (
        "" if ckpt.is_complete(path) else "incomplete")
    if why:
        return why
    try:
        index = torch.load(path / INDEX, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable index means the same to the user
        return f"{INDEX} is unreadable ({type(exc).__name__})"
    for name, d in index.items():
        f = path / "dcp" / name
        if not f.is_file():
            return f"dcp/{name} is missing"
        if f.stat().st_size != d["bytes"]:
            return f"dcp/{name} has {f.stat().st_size:,} bytes, the index says {d['bytes']:,} (truncated?)"
        if verify and _digest(f)["sha256"] != d["sha256"]:
            return f"dcp/{name} does not match its sha256 (corrupted)"
    return ""


class DcpCheckpoint:
    """A torch-backend checkpoint opened for resuming (every process opens it)."""

    def __init__(self, path: Path):
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("format") != FORMAT:
            raise UserError(Problem(f"checkpoint {path} was not written by the torch backend (it has no "
                                    f"{INDEX}: an xla-backend checkpoint); resume it with run.backend: xla",
                                    "checkpoint.resume"))
        why = problem(path)
        if why:
            raise UserError(Problem(f"checkpoint {path} is unusable: {why}", "checkpoint.resume"))
        self.path, self.meta = path, meta

    def load_model(self, model: torch.nn.Module) -> None:
        import torch.distributed.checkpoint as dcp
        state = {"model": model.state_dict()}  # the full tensors of the model as built: read in place
        dcp.load(state, storage_reader=dcp.FileSystemReader(self.path / "dcp"))
        model.load_state_dict(state["model"])

    def load_optimizer(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict
        state = {"optimizer": get_optimizer_state_dict(model, optimizer)}  # this run's shards, to fill
        dcp.load(state, storage_reader=dcp.FileSystemReader(self.path / "dcp"))
        set_optimizer_state_dict(model, optimizer, state["optimizer"])


def read_model_state(path: Path) -> dict[str, torch.Tensor]:
    """The full model state dict of a torch-backend checkpoint, in this one process (for
    evaluation and tests; needs no process group)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
    import tempfile
    why = problem(path)
    if why:
        raise UserError(Problem(f"checkpoint {path} is unusable: {why}"))
    with tempfile.TemporaryDirectory() as tmp:
        dcp_to_torch_save(Path(path) / "dcp", Path(tmp) / "full.pt")
        full = torch.load(Path(tmp) / "full.pt", map_location="cpu", weights_only=False)
    return dict(full["model"])
