"""The run's side of checkpoints: which one a run resumes from, what its metadata holds (spec
digest, RNG states, data state, mesh), and writing one.  The file format is :mod:`vattfw.checkpoint`;
how a backend lays tensors out is its ``save_checkpoint`` / ``open_checkpoint``."""
from __future__ import annotations

import base64
import hashlib
import json
import pickle
import random
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .. import checkpoint as ckpt
from ..errors import Problem, UserError


def spec_hash(spec: Any) -> str:
    """Digest of what a resumed run must share with the run it continues."""
    d = spec.model_dump(mode="json")
    keep = {k: d[k] for k in ("model", "losses", "optimizer", "data")}
    # model.init is left out: only a fresh start reads it; a resumed run loads its own weights.
    keep["model"] = {k: v for k, v in d["model"].items() if k != "init"}
    keep["train"] = {k: d["train"][k] for k in ("global_batch_size", "grad_accumulation", "precision")}
    keep["seed"] = d["run"]["seed"]
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def seed_host(seed: int) -> None:
    import numpy as np
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def rng_state(backend: Any) -> dict[str, Any]:
    """Every random stream of this process (host: python, numpy, torch; the backend's device)."""
    import numpy as np
    blob = pickle.dumps({"python": random.getstate(), "numpy": np.random.get_state(),
                         "torch": torch.get_rng_state()})
    return {"device": backend.rng_state(), "host": base64.b64encode(blob).decode()}


def restore_rng(state: dict[str, Any], backend: Any) -> None:
    import numpy as np
    host = pickle.loads(base64.b64decode(state["host"]))
    random.setstate(host["python"])
    np.random.set_state(host["numpy"])
    torch.set_rng_state(host["torch"])
    backend.set_rng_state(state["device"])


class Checkpointer:
    """Finds, opens and writes one run's checkpoints under ``root``; ``warn`` prints a line."""

    def __init__(self, spec: Any, backend: Any, root: Path, warn: Callable[[str], None]):
        self.spec, self.backend, self.root, self.warn = spec, backend, Path(root), warn
        self.last: str | None = None  # the newest checkpoint this run wrote

    def prepare(self) -> None:
        """A writable folder (one line otherwise, before anything is built), partial writes gone."""
        ckpt.prepare(self.root)
        if self.backend.is_main_process:
            ckpt.clean_partial(self.root)
        self.backend.barrier()  # (no process may look for checkpoints while another cleans)

    def open(self, resume: str) -> tuple[Path | None, Any]:
        """(path, the backend's opened checkpoint) to resume from, or (None, None) for a fresh start."""
        path = self.find(resume)
        if path is None:
            return None, None
        restored = self.backend.open_checkpoint(path)
        if restored.meta.get("spec_hash") != spec_hash(self.spec):
            raise UserError(Problem(
                f"checkpoint {path} was written by a run with a different model, losses, optimizer, "
                f"data, batch or seed; resume it with the same spec, or start afresh with --resume never "
                f"or another run.name", "checkpoint.resume"))
        return path, restored

    def find(self, arg: str) -> Path | None:
        if arg in ("never", "none", ""):
            return None
        if arg == "auto":  # every checkpoint bad: an error, not a silent restart over them
            return ckpt.newest_intact(self.root, self.warn)
        path = Path(arg)
        if not path.exists():
            raise UserError(Problem(f"checkpoint {path} does not exist", "checkpoint.resume"))
        if (path / "meta.json").exists() or ckpt.NAME.match(path.name):  # one checkpoint, named by the user
            why = ckpt.problem(path)
            if why:
                raise UserError(Problem(f"checkpoint {path} is unusable: {why}", "checkpoint.resume"))
            return path
        # a run folder or checkpoint folder: its newest intact checkpoint
        root = path / "checkpoints" if ckpt.step_dirs(path / "checkpoints") else path
        found = ckpt.newest_intact(root, self.warn)
        if found is None:
            raise UserError(Problem(f"{path} holds no checkpoint", "checkpoint.resume"))
        return found

    def save(self, step: int, model: Any, optimizer: Any, data: Any, skipped_steps: int,
             mesh: dict[str, int]) -> str:
        meta = {"spec_hash": spec_hash(self.spec), "rng": rng_state(self.backend), "data": data,
                "skipped_steps": skipped_steps, "time": time.time(), "mesh": mesh}
        path = self.backend.save_checkpoint(self.root, step, model, optimizer, meta, self.spec.checkpoint.keep_last)
        self.last = str(path)
        return self.last

    def latest(self) -> str | None:
        """The newest checkpoint of this run (written by it, or found on disk): for messages."""
        found = self.last or ckpt.latest(self.root)
        return str(found) if found else None
