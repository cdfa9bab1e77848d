"""Checkpoints on disk, apart from the engine and the backends (both use them): the atomic,
self-validating step folders (:mod:`.folder`) and the per-host pieces several processes write
into them (:mod:`.shards`).  :func:`load` returns whole tensors either way."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import Problem, UserError
from .folder import (MARKER, NAME, CheckpointError, clean_partial, is_complete, latest, list_complete,
                     newest_intact, prepare, problem, prune, save, step_dir, step_dirs)
from . import folder, shards

__all__ = ["MARKER", "NAME", "CheckpointError", "clean_partial", "is_complete", "latest", "list_complete", "load",
           "newest_intact", "prepare", "problem", "prune", "save", "step_dir", "step_dirs"]


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors by name, meta) of a usable checkpoint folder; pieces written per host are merged
    into whole tensors; a UserError naming what is wrong otherwise."""
    tensors, meta = folder.load(path)
    if meta.get("shards"):
        try:
            tensors = shards.merge(tensors, str(path))
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise UserError(Problem(f"{path} is not a usable vattfw checkpoint: {exc}", "checkpoint.resume")) from None
    return tensors, meta
