"""`vattfw checkpoint inspect CKPT [--json]` and `vattfw checkpoint export CKPT OUT.pt [--force]`.

CKPT is one checkpoint (``step_NNNNNNNNN``), a run's ``checkpoints/`` folder or a run folder
(their newest step folder).  ``inspect`` prints the step, the mesh it was written with, every
tensor's shape / dtype / bytes and an integrity verdict (:func:`vattfw.checkpoint.problem`:
marker, sizes, sha256); exit 1 when the checkpoint is unusable.  ``export`` writes the model's
weights as one consolidated state-dict file (``torch.save`` of CPU tensors, loadable with
``weights_only=True``) that `vattfw eval --checkpoint OUT.pt` and ``model.init.checkpoint``
read; the checkpoint is verified first.  Both read either backend's format (xla: whole
tensors in ``model.pt``; torch: ``torch.distributed.checkpoint`` shards).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import Problem, UserError


def register(sub) -> None:
    p = sub.add_parser("checkpoint", help="inspect a training checkpoint or export its weights as one file")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    i = verbs.add_parser("inspect", help="step, tensors (shape, dtype, bytes) and an integrity verdict")
    i.add_argument("path", metavar="CKPT", help="a step_NNNNNNNNN folder, a checkpoints folder or a run folder "
                                                "(newest step folder)")
    i.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    i.set_defaults(func=inspect)
    e = verbs.add_parser("export", help="write the model weights as one state-dict file (for eval / model.init)")
    e.add_argument("path", metavar="CKPT", help="a step_NNNNNNNNN folder, a checkpoints folder or a run folder")
    e.add_argument("out", metavar="OUT.pt", help="the file to write")
    e.add_argument("--force", action="store_true", help="replace OUT.pt if it exists")
    e.set_defaults(func=export)


def resolve(path: str | Path) -> Path:
    """The step folder ``path`` names: itself, or the newest step folder under it (``checkpoints/``
    of a run folder), complete or not (inspect says what is wrong with it)."""
    from .. import checkpoint as ckpt
    path = Path(path)
    if not path.exists():
        raise UserError(Problem(f"checkpoint not found: {path}"))
    if not path.is_dir():
        raise UserError(Problem(f"{path} is a file; CKPT is a step_NNNNNNNNN folder, a checkpoints folder or a "
                                f"run folder (a .pt file is already one state dict)"))
    if (path / "meta.json").exists() or ckpt.NAME.match(path.name):
        return path
    root = path / "checkpoints" if ckpt.step_dirs(path / "checkpoints") else path
    found = ckpt.step_dirs(root)
    if not found:
        raise UserError(Problem(f"{path} holds no checkpoint (no step_NNNNNNNNN folder in it or in its "
                                f"checkpoints/)"))
    return found[-1]


def _format(path: Path) -> str:
    try:
        return json.loads((path / "meta.json").read_text()).get("format") or "xla"
    except (OSError, ValueError, AttributeError):
        return "xla"


def _problem(path: Path, fmt: str) -> str:
    from .. import checkpoint as ckpt
    if fmt == "torch":
        from ..backend.torch_checkpoint import problem
        return problem(path)
    return ckpt.problem(path)


def _row(name: str, tensor: Any, sharding: str = "whole") -> dict[str, Any]:
    return {"name": name, "shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch."),
            "bytes": tensor.numel() * tensor.element_size(), "sharding": sharding}


def _flat(prefix: str, obj: Any):
    """(dotted name, tensor) of every tensor in a nested optimiser state."""
    import torch
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat(f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _flat(f"{prefix}.{i}", v)


def _xla_tensors(path: Path, meta: dict) -> tuple[list[dict], str]:
    """Rows of every tensor in the checkpoint's .pt files, or ([], why they cannot be read)."""
    import torch
    if meta.get("shards"):
        return _host_tensors(path, meta)
    rows = []
    for f in meta.get("files", {}):
        try:
            obj = torch.load(path / f, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001 - a damaged file: say so, the verdict explains why
            return rows, f"{f} cannot be read ({type(exc).__name__})"
        part = f[:-3]
        if part == "optimizer":
            obj = obj.get("state", {}) if isinstance(obj, dict) else obj
        rows += [_row(f"{part}/{n}", t) for n, t in _flat("", obj)]
    return rows, ""


def _host_tensors(path: Path, meta: dict) -> tuple[list[dict], str]:
    """Rows of a per-host checkpoint (checkpoint/shards.py): global shapes from layout.pt, and how many
    pieces which processes wrote of each tensor."""
    import torch
    from ..checkpoint.shards import LAYOUT
    try:
        layout = torch.load(path / f"{LAYOUT}.pt", map_location="cpu", weights_only=True)
        writers: dict[str, list[int]] = {}
        for i, f in enumerate(sorted(n for n in meta["files"] if n != f"{LAYOUT}.pt")):
            for key, parts in torch.load(path / f, map_location="cpu", weights_only=True, mmap=True).items():
                writers.setdefault(key, []).extend([i] * len(parts))
    except Exception as exc:  # noqa: BLE001 - a damaged file: the verdict explains why
        return [], f"the shard files cannot be read ({type(exc).__name__})"
    rows = []
    for key, (shape, dtype) in layout["tensors"].items():
        t = torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
        who = writers.get(key, [])
        how = f"{len(who)} piece(s) from process(es) {','.join(map(str, sorted(set(who))))}" if who else "no pieces"
        if key.startswith("optimizer/"):  # named as in a single-process checkpoint: optimizer/<param>.<state>
            key = "optimizer/" + key[len("optimizer/"):].replace("/", ".", 1)
        rows.append(_row(key, t, how))
    return rows, ""


def _torch_tensors(path: Path) -> tuple[list[dict], str]:
    """Rows from the DCP metadata (global shapes, chunk counts: no tensor is read)."""
    import torch
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata
    try:
        md = FileSystemReader(str(path / "dcp")).read_metadata()
    except Exception as exc:  # noqa: BLE001
        return [], f"dcp/.metadata cannot be read ({type(exc).__name__})"
    rows = []
    for name, m in md.state_dict_metadata.items():
        if isinstance(m, TensorStorageMetadata):
            t = torch.empty(m.size, dtype=m.properties.dtype, device="meta")
            rows.append(_row(name.replace(".", "/", 1), t, f"{len(m.chunks)} chunk(s)"))
    return rows, ""


def report(path: Path) -> dict[str, Any]:
    """What `inspect` prints, as a mapping."""
    fmt = _format(path)
    why = _problem(path, fmt)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    rows, unreadable = (_torch_tensors(path) if fmt == "torch" else _xla_tensors(path, meta)) if meta else ([], "")
    files = {}
    for name, entry in (meta.get("files") or {}).items():
        files[name] = entry if isinstance(entry, int) else (entry or {}).get("bytes")
    model = [r for r in rows if r["name"].startswith("model/")]
    return {"checkpoint": str(path), "format": fmt, "step": meta.get("step"), "mesh": meta.get("mesh"),
            "spec_hash": meta.get("spec_hash"), "integrity": "ok" if not why else why, "ok": not why,
            "files": files, "unreadable": unreadable,
            "model": {"tensors": len(model), "parameters": sum(_numel(r["shape"]) for r in model),
                      "bytes": sum(r["bytes"] for r in model)},
            "optimizer": {"tensors": len(rows) - len(model), "bytes": sum(r["bytes"] for r in rows) -
                          sum(r["bytes"] for r in model)},
            "tensors": rows}


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def inspect(args) -> int:
    path = resolve(args.path)
    info = report(path)
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        _print(info)
    return 0 if info["ok"] else 1


def _print(info: dict[str, Any]) -> None:
    mesh = " x ".join(f"{k}={v}" for k, v in (info["mesh"] or {}).items()) or "not recorded"
    verdict = ("ok (marker, sizes and sha256 digests match meta.json)" if info["ok"]
               else f"UNUSABLE: {info['integrity']}")
    print(f"checkpoint  {info['checkpoint']}")
    print(f"format      {info['format']}")
    print(f"step        {info['step']}")
    print(f"mesh        {mesh} (written with; resumes onto any mesh)")
    print(f"integrity   {verdict}")
    for name, size in info["files"].items():
        print(f"file        {name}  {size:,} bytes" if isinstance(size, int) else f"file        {name}")
    m, o = info["model"], info["optimizer"]
    print(f"model       {m['tensors']} tensors, {m['parameters']:,} values, {m['bytes']:,} bytes")
    print(f"optimizer   {o['tensors']} tensors, {o['bytes']:,} bytes")
    if info["unreadable"]:
        print(f"tensors     not listed: {info['unreadable']}")
    rows = info["tensors"]
    if rows:
        width = max(len(r["name"]) for r in rows)
        print(f"\n{'tensor':<{width}}  {'shape':<18} {'dtype':<9} {'bytes':>12}  sharding")
        for r in rows:
            shape = "x".join(map(str, r["shape"])) or "scalar"
            print(f"{r['name']:<{width}}  {shape:<18} {r['dtype']:<9} {r['bytes']:>12,}  {r['sharding']}")


def model_state(path: Path) -> dict:
    """The full model state dict of a verified checkpoint of either backend."""
    fmt = _format(path)
    if fmt == "torch":
        from ..backend.torch_checkpoint import read_model_state
        from ..engine.weights import state_of
        return state_of(read_model_state(path), str(path))  # the model's weights, as for xla
    from ..engine.weights import read_checkpoint
    return read_checkpoint(path)[0]


def export(args) -> int:
    import torch
    path, out = resolve(args.path), Path(args.out)
    if out.exists() and not args.force:
        raise UserError(Problem(f"{out} exists; pass --force to replace it, or name another OUT.pt"))
    if not out.parent.is_dir():
        raise UserError(Problem(f"cannot write {out}: its folder {out.parent} does not exist"))
    why = _problem(path, _format(path))
    if why:
        raise UserError(Problem(f"checkpoint {path} is unusable: {why}; nothing exported"))
    state = {k: v.detach().cpu().contiguous() for k, v in model_state(path).items()}
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)  # then renamed: a reader never sees half a file
        os.replace(tmp, out)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(Problem(f"cannot write {out}: {(str(exc).splitlines() or [''])[0]}")) from None
    size = sum(v.numel() * v.element_size() for v in state.values())
    print(f"wrote {out}: {len(state)} tensors, {size:,} bytes of weights, from {path} "
          f"(step {json.loads((path / 'meta.json').read_text()).get('step')})")
    return 0
