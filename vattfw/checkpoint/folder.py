"""Atomic, self-validating checkpoints: one folder per step.

Layout of ``<dir>/step_000000123/``: ``model.pt`` and ``optimizer.pt`` (plain ``torch.save``
of CPU tensors: under SPMD ``.cpu()`` gathers each sharded tensor, so a checkpoint does not
depend on the mesh it was written with and resumes on any mesh of one host), ``meta.json``
(step, spec hash, RNG states, data-iterator state, each file's size and sha256) and
``COMPLETE``, written last.  The folder is written as ``.tmp-step_...`` and renamed, so a
crash leaves either a ``.tmp-`` folder (deleted on the next start) or nothing.  A folder
without ``COMPLETE``, with a meta.json that is not what this module writes, or whose files
do not match the sizes and digests in meta.json, is never loaded: :func:`problem` names
what is wrong, and resuming falls back to the previous good checkpoint, saying so.
A write that fails (a full disk: ``torch.save`` then raises RuntimeError, not OSError)
removes its ``.tmp-`` folder and leaves the previous checkpoint as it was.

Several hosts write per-host pieces into the same layout (:mod:`vattfw.checkpoint.shards`);
docs/scale-out.md says why that, not torch.distributed.checkpoint's SPMD planner, is used.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import Problem, UserError

MARKER = "COMPLETE"
NAME = re.compile(r"^step_(\d{9})$")


class CheckpointError(Exception):
    """Writing a checkpoint failed; the previous checkpoint (named in the message) is intact."""


def step_dir(root: Path, step: int) -> Path:
    return root / f"step_{step:09d}"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _read_meta(path: Path) -> tuple[dict | None, str]:
    """(meta, "") or (None, what is wrong with meta.json)."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        return None, "no meta.json"
    except (OSError, ValueError) as exc:
        return None, f"meta.json is unreadable ({type(exc).__name__})"
    if not isinstance(meta, dict):
        return None, f"meta.json holds a {type(meta).__name__}, not a mapping"
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        return None, "meta.json lists no files"
    for name, entry in files.items():
        ok = isinstance(entry, int) or (isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
                                        and isinstance(entry.get("sha256"), str))
        if not ok or not name.endswith(".pt") or "/" in name or name.startswith("."):
            return None, f"meta.json: files.{name} is not a file entry"
    rng = meta.get("rng")
    wrong = [k for k, ok in (("step", isinstance(meta.get("step"), int) and not isinstance(meta.get("step"), bool)),
                             ("spec_hash", isinstance(meta.get("spec_hash", ""), str)),
                             ("skipped_steps", isinstance(meta.get("skipped_steps", 0), int)),
                             ("rng", rng is None or (isinstance(rng, dict) and isinstance(rng.get("host"), str)
                                                     and "device" in rng))) if not ok]
    if wrong:
        return None, f"meta.json: {', '.join(wrong)} of the wrong type"
    m = NAME.match(path.name)
    if m and int(m.group(1)) != meta["step"]:
        return None, f"meta.json says step {meta['step']}"
    return meta, ""


_verified: dict[tuple, bool] = {}  # (file, size, mtime_ns, digest) already hashed in this process


def problem(path: Path, verify: bool = True) -> str:
    """What makes ``path`` unusable as a checkpoint ("" when it is complete and intact).
    ``verify``: also compare every file's sha256 with meta.json (reads every byte)."""
    path = Path(path)
    if not path.is_dir():
        return "not a folder"
    meta, why = _read_meta(path)
    if meta is None:
        return why
    if not (path / MARKER).is_file():
        return f"no {MARKER} marker (an interrupted write)"
    for name, entry in meta["files"].items():
        size, digest = (entry, None) if isinstance(entry, int) else (entry["bytes"], entry["sha256"])
        try:
            st = (path / name).stat()
        except OSError:
            return f"{name} is missing"
        if st.st_size != size:
            return f"{name} has {st.st_size:,} bytes, meta.json says {size:,} (truncated?)"
        key = (str((path / name).resolve()), size, st.st_mtime_ns, digest)
        if verify and digest and not _verified.get(key):
            if _digest(path / name) != digest:
                return f"{name} does not match its sha256 in meta.json (corrupted)"
            _verified[key] = True
    return ""


def is_complete(path: Path) -> bool:
    """Marker, meta.json and file sizes in order (cheap: the digests are checked on load)."""
    return not problem(path, verify=False)


def step_dirs(root: Path) -> list[Path]:
    """Every ``step_NNNNNNNNN`` folder under ``root``, oldest first, usable or not."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if NAME.match(p.name) and p.is_dir())


def list_complete(root: Path) -> list[Path]:
    return [p for p in step_dirs(root) if is_complete(p)]


def newest_intact(root: Path, warn: Callable[[str], None]) -> Path | None:
    """The newest checkpoint under ``root`` whose files match their digests; ``warn`` gets one
    line per newer one that does not.  None when there is no step folder at all; a UserError
    when there are some and none is usable (resuming would restart at step 0 over them)."""
    found = step_dirs(root)
    bad = []
    for path in reversed(found):
        why = problem(path)
        if not why:
            return path
        bad.append(f"{path.name} ({why})")
        warn(f"checkpoint {path} is unusable: {why}; trying the previous one")
    if not found:
        return None
    raise UserError(Problem(
        f"no usable checkpoint in {root}: {'; '.join(bad)}. Resuming would restart at step 0 and write over "
        f"them: move them away, or start afresh with --resume never", "checkpoint.resume"))


def prepare(root: Path) -> None:
    """Create the checkpoint folder and check it is writable (before anything is built)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".tmp-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(Problem(f"cannot write checkpoints to {root}: {exc.strerror or exc} (set checkpoint.dir "
                                f"or run.output_dir to a writable folder)", "checkpoint.dir")) from None


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


class _Hashing:
    """A write-only file that digests what passes through it (no second read of a large file)."""

    def __init__(self, f: Any):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.h.update(view)
        self.n += len(view)
        return self.f.write(view)

    def flush(self) -> None:
        self.f.flush()


def _torch_save(obj: Any, path: Path) -> dict[str, Any]:
    with open(path, "wb") as f:
        out = _Hashing(f)
        torch.save(obj, out)
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": out.n, "sha256": out.h.hexdigest()}


def _why(exc: BaseException, root: Path) -> str:
    """A failed write in words: a full disk is named as such whichever exception said it."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "out of disk space"
    first = (str(exc).splitlines() or [""])[0].strip()
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        free = None
    room = f"; {free / 2 ** 20:,.0f} MiB free on that disk" if free is not None else ""
    if isinstance(exc, RuntimeError):  # torch's zip writer reports a failed write, not its errno
        return f"the file write failed{room} (a full disk or file-size limit?): {first}"
    return f"{type(exc).__name__}: {first}{room}"


def save(root: Path, step: int, tensors: dict[str, Any], meta: dict[str, Any], keep_last: int) -> Path:
    """Write ``tensors`` (name -> picklable state of CPU tensors) and ``meta`` atomically."""
    final = step_dir(root, step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    previous = latest(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        files = {f"{name}.pt": _torch_save(obj, tmp / f"{name}.pt") for name, obj in tensors.items()}
        _fsync_write(tmp / "meta.json", json.dumps({**meta, "step": step, "files": files}, indent=1).encode())
        _fsync_write(tmp / MARKER, b"ok\n")
        if final.exists():  # the same step written again (e.g. a resumed run that ends at once)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(f"writing the checkpoint for step {step} in {root} failed "
                              f"({_why(exc, root)}); {kept}") from None
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
    """(tensors by name, meta) from a complete checkpoint folder whose files match meta.json
    (per-host pieces as written: :func:`vattfw.checkpoint.load` merges them)."""
    path = Path(path)
    why = problem(path)
    if why:
        raise UserError(Problem(f"{path} is not a usable vattfw checkpoint: {why}", "checkpoint.resume"))
    meta = json.loads((path / "meta.json").read_text())
    tensors = {}
    for f in meta["files"]:
        try:
            tensors[f[:-3]] = torch.load(path / f, map_location="cpu", weights_only=False)
        except Exception as exc:  # only a checkpoint of the older format (sizes, no digests) gets here
            first = (str(exc).splitlines() or [""])[0]
            raise UserError(Problem(f"{path / f} cannot be read ({type(exc).__name__}: {first})",
                                    "checkpoint.resume")) from None
    return tensors, meta
