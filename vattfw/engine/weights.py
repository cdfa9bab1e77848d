"""Model weights from checkpoints (engine checkpoint folders or state-dict files), loaded into a
model with errors that say what does not match.  Public for evaluators as ``vattfw.eval.load_weights``."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import Problem, UserError
from .. import checkpoint as ckpt

# Positional tables may have another bucket count: the tokenizers resample them on load.
RESAMPLED = re.compile(r".*\.pos\.axis\d+$")
LISTED = 12  # names listed per kind of mismatch before "... and N more"


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], int | None, Path]:
    """(model state dict, step or None, the folder/file read).  ``path`` is an engine checkpoint
    folder (``.../step_000001000``), a run's checkpoint folder (its newest complete checkpoint
    is used), or a file holding a state dict (plain, or under ``model`` / ``state_dict``)."""
    path = Path(path)
    if not path.exists():
        raise UserError(Problem(f"checkpoint not found: {path} (looked for {path.resolve()})"))
    if path.is_file():
        return read_state(path), None, path
    if not (path / "meta.json").exists():
        newest = ckpt.latest(path)
        if newest is None:
            raise UserError(Problem(f"checkpoint folder {path} holds no complete checkpoint (step_NNNNNNNNN "
                                    f"folders with a COMPLETE marker)"))
        path = newest
    tensors, meta = ckpt.load(path)  # a UserError when incomplete or truncated
    if "model" not in tensors:
        raise UserError(Problem(f"checkpoint {path} has no model.pt"))
    return state_of(tensors["model"], str(path)), meta.get("step"), path


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The model's state dict from a checkpoint file (a plain state dict, or a dict holding one
    under ``model`` / ``state_dict``)."""
    path = Path(path)
    if not path.exists():
        raise UserError(Problem(f"checkpoint not found: {path} (looked for {path.resolve()})"))
    if path.is_dir():
        return read_checkpoint(path)[0]
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a cut file
        raise UserError(Problem(f"checkpoint {path} cannot be read (truncated or not a torch checkpoint? "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")) from None
    return state_of(obj, str(path))


def state_of(obj: Any, where: str) -> dict[str, torch.Tensor]:
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(Problem(f"checkpoint {where} holds no model state dict (name -> tensor)"))
    from ..model import model_weights
    return model_weights(dict(obj))  # a training loss's own parameters (losses.*) are no model weights


def mismatches(model: torch.nn.Module, state: Mapping[str, torch.Tensor],
               ignore: tuple[str, ...] = ()) -> list[str]:
    """Human-readable differences between ``model``'s parameters/buffers and ``state``;
    names starting with a prefix in ``ignore`` are not compared (e.g. a new classifier head)."""
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(ignore)}
    theirs = {k: v for k, v in state.items() if not k.startswith(ignore)}
    missing = [f"{k} {list(own[k].shape)}" for k in own if k not in theirs]
    extra = [f"{k} {list(theirs[k].shape)}" for k in theirs if k not in own]
    shapes = [f"{k}: model {list(own[k].shape)} vs checkpoint {list(theirs[k].shape)}"
              for k in own if k in theirs and own[k].shape != theirs[k].shape
              and not (RESAMPLED.match(k) and own[k].shape[1:] == theirs[k].shape[1:])]
    out = []
    for title, names in (("missing from the checkpoint", missing), ("not in the model", extra),
                         ("with other shapes", shapes)):
        if names:
            more = f" ... and {len(names) - LISTED} more" if len(names) > LISTED else ""
            out.append(f"{len(names)} parameter(s) {title}: {'; '.join(names[:LISTED])}{more}")
    return out


def load_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor] | str | Path,
                 ignore: tuple[str, ...] = (), where: str = "") -> torch.nn.Module:
    """Load ``state`` (or the checkpoint file it names) into ``model``; a UserError lists every
    mismatched parameter name and shape (a checkpoint of another model, or a cut one)."""
    if isinstance(state, (str, Path)):
        where = where or str(state)
        state = read_state(state)
    problems = mismatches(model, state, ignore)
    if problems:
        head = f"checkpoint {where or '(state dict)'} does not fit the spec's model"
        raise UserError([Problem(f"{head}: {p}") for p in problems])
    keep = {k: v for k, v in state.items() if not k.startswith(ignore)}
    model.load_state_dict(keep, strict=not ignore)
    return model
