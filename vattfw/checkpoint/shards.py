"""Per-host checkpoints: with several processes each writes only the pieces of the tensors it
owns; loading merges them into whole CPU tensors, which then load onto any mesh.

Layout of ``step_NNNNNNNNN/`` (next to the single-process one, same integrity rules):
``layout.pt`` (process 0: every tensor's global shape and dtype, the optimiser's state dict with
each tensor replaced by its key, the model's key order), ``shards-<i>-of-<n>.pt`` (process i:
``{key: [(index, tensor), ...]}``, ``index`` = one ``(start, stop)`` per dimension),
``meta.json`` (``shards: n``; every file's bytes and sha256) and ``COMPLETE``, written by
process 0 after a barrier that every process reaches once its file is on disk.  The folder is
written as ``.tmp-step_...-hosts`` (one name for every process) and renamed.

Who owns a piece is the backend's business (:meth:`XlaBackend.save_checkpoint`: the replica-0
copy of each shard, on this process's devices); this module only checks, on load, that the
pieces of every tensor cover it exactly once.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

LAYOUT = "layout"
Index = tuple[tuple[int, int], ...]
Pieces = dict[str, list[tuple[Index, torch.Tensor]]]


def shard_name(index: int, count: int) -> str:
    return f"shards-{index:05d}-of-{count:05d}"


def whole(shape: torch.Size | tuple[int, ...]) -> Index:
    return tuple((0, s) for s in shape)


def layout_of(model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any]) -> tuple[dict, dict]:
    """(layout, {key: tensor}) of a model and optimiser state: keys ``model/<name>`` and
    ``optimizer/<param>/<name>``; the layout keeps the optimiser's non-tensor parts."""
    tensors: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in model_state.items()}
    state = {}
    for pid, entry in optimizer_state["state"].items():
        state[pid] = {}
        for k, v in entry.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optimizer/{pid}/{k}"] = v
                state[pid][k] = f"@{pid}/{k}"
            else:
                state[pid][k] = v
    layout = {"tensors": {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in tensors.items()},
              "model": list(model_state), "optimizer": {**optimizer_state, "state": state}}
    return layout, tensors


def save(root: Path, step: int, pieces: Pieces, layout: dict, meta: dict[str, Any], keep_last: int,
         process: tuple[int, int], barrier: Callable[[], None]) -> Path:
    """Write this process's ``pieces`` (and, in process 0, ``layout`` and the metadata) as the
    checkpoint of ``step``; every process calls it, with the same arguments but its pieces."""
    from . import folder as ckpt
    index, count = process
    final = ckpt.step_dir(root, step)
    tmp = root / f".tmp-{final.name}-hosts"
    previous = ckpt.latest(root)
    try:
        if index == 0:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        barrier()  # the folder exists
        name = shard_name(index, count)
        digests = {f"{name}.pt": ckpt._torch_save(pieces, tmp / f"{name}.pt")}
        if index == 0:
            digests[f"{LAYOUT}.pt"] = ckpt._torch_save(layout, tmp / f"{LAYOUT}.pt")
        ckpt._fsync_write(tmp / f"{name}.json", json.dumps(digests).encode())
        barrier()  # every process's file is on disk
        if index == 0:
            files: dict[str, Any] = {}
            for i in range(count):
                part = tmp / f"{shard_name(i, count)}.json"
                files.update(json.loads(part.read_text()))
                part.unlink()
            ckpt._fsync_write(tmp / "meta.json", json.dumps({**meta, "step": step, "shards": count,
                                                             "files": files}, indent=1).encode())
            ckpt._fsync_write(tmp / ckpt.MARKER, b"ok\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            ckpt._fsync_dir(root)
            ckpt.prune(root, keep_last)
        barrier()  # the checkpoint is complete for everyone
    except (OSError, RuntimeError) as exc:
        if index == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise ckpt.CheckpointError(f"process {index}: writing the checkpoint for step {step} in {root} failed "
                                   f"({ckpt._why(exc, root)}); {kept}") from None
    return final


def merge(files: dict[str, Any], where: str) -> dict[str, Any]:
    """``{"model": state dict, "optimizer": state dict}`` of whole CPU tensors from the loaded
    files of a per-host checkpoint; ValueError when a tensor's pieces do not cover it exactly."""
    layout = files[LAYOUT]
    full: dict[str, torch.Tensor] = {}
    covered: dict[str, torch.Tensor] = {}
    for key, (shape, dtype) in layout["tensors"].items():
        full[key] = torch.empty(shape, dtype=getattr(torch, dtype))
        covered[key] = torch.zeros(shape, dtype=torch.int8)
    for name, pieces in files.items():
        if name == LAYOUT:
            continue
        for key, parts in pieces.items():
            for index, tensor in parts:
                region = tuple(slice(a, b) for a, b in index)
                full[key][region] = tensor
                covered[key][region] += 1
    for key, count in covered.items():
        if count.numel() and not bool((count == 1).all()):
            how = "missing parts" if bool((count == 0).any()) else "overlapping parts"
            raise ValueError(f"{where}: {key} has {how} in the shard files")
    model = {k: full[f"model/{k}"] for k in layout["model"]}
    opt = dict(layout["optimizer"])
    opt["state"] = {pid: {k: full[f"optimizer/{v[1:]}"] if isinstance(v, str) and v.startswith("@") else v
                          for k, v in entry.items()} for pid, entry in opt["state"].items()}
    return {"model": model, "optimizer": opt}
