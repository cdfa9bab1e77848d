"""Where a run keeps its files: one definition for the trainer, `vattfw eval` and the sweep."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def run_dir_of(spec: Any) -> Path:
    """``run.output_dir / run.name``: checkpoints, the tracker's local state and artefacts."""
    return Path(spec.run.output_dir) / spec.run.name
