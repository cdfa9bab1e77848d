"""Atomic, self-validating checkpoints: one folder per step.

Layout of ``<dir>/step_000000123/``: ``model.pt`` and ``optimizer.pt`` (plain ``torch.save``
of CPU tensors: under SPMD ``.cpu()`` gathers each sharded tensor, so a checkpoint does not
depend on the mesh it was written with and resumes on any mesh of one host), ``meta.json``
(step, spec hash, RNG states, data-iterator state, file sizes) and ``COMPLETE``, written
last.  The folder is written as ``.tmp-step_...`` and renamed, so a crash leaves either a
``.tmp-`` folder (deleted on the next start) or nothing; a folder without ``COMPLETE``,
or whose files do not match the sizes in meta.json, is never loaded.

Multi-host runs would need torch.distributed.checkpoint with torch_xla's SPMD planners
(each host writing its shards); in torch_xla 2.9 on one CPU host its save planner kept only
one tensor of a small model, so it is not used here.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import Problem, UserError

MARKER = "COMPLETE"
NAME = re.compile(r"^step_(\d{9})$")


class CheckpointError(Exception):
    """Writing a checkpoint failed; the previous checkpoint (named in the message) is intact."""


def step_dir(root: Path, step: int) -> Path:
    return root / f"step_{step:09d}"


def is_complete(path: Path) -> bool:
    try:
        meta = json.loads((path / "meta.json").read_text())
        if not (path / MARKER).is_file():
            return False
        return all((path / f).stat().st_size == size for f, size in meta["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def list_complete(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = sorted(p for p in root.iterdir() if NAME.match(p.name) and p.is_dir())
    return [p for p in found if is_complete(p)]


def latest(root: Path) -> Path | None:
    done = list_complete(root)
    return done[-1] if done else None


def clean_partial(root: Path) -> list[Path]:
    """Delete ``.tmp-`` folders left by an interrupted write; return what was removed."""
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".tmp-") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _torch_save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def save(root: Path, step: int, tensors: dict[str, Any], meta: dict[str, Any], keep_last: int) -> Path:
    """Write ``tensors`` (name -> picklable state of CPU tensors) and ``meta`` atomically."""
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(root, step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    previous = latest(root)
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        files = {}
        for name, obj in tensors.items():
            _torch_save(obj, tmp / f"{name}.pt")
            files[f"{name}.pt"] = (tmp / f"{name}.pt").stat().st_size
        _fsync_write(tmp / "meta.json", json.dumps({**meta, "step": step, "files": files}, indent=1).encode())
        _fsync_write(tmp / MARKER, b"ok\n")
        if final.exists():  # the same step written again (e.g. a resumed run that ends at once)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        why = "out of disk space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else f"{type(exc).__name__}: {exc}"
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(f"writing the checkpoint for step {step} in {root} failed ({why}); {kept}") from exc
    prune(root, keep_last)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(root: Path, keep_last: int) -> None:
    done = list_complete(root)
    for old in done[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors by name, meta) from a complete checkpoint folder."""
    path = Path(path)
    if not is_complete(path):
        raise UserError(Problem(f"{path} is not a complete vattfw checkpoint (no {MARKER} marker, or its files "
                                f"do not match meta.json)", "checkpoint.resume"))
    meta = json.loads((path / "meta.json").read_text())
    tensors = {f[:-3]: torch.load(path / f, map_location="cpu", weights_only=False) for f in meta["files"]}
    if meta.get("shards"):  # written per host (engine/shards.py): whole tensors from every host's pieces
        from .shards import merge
        try:
            tensors = merge(tensors, str(path))
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise UserError(Problem(f"{path} is not a usable vattfw checkpoint: {exc}", "checkpoint.resume")) from None
    return tensors, meta
