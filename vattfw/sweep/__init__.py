"""`vattfw sweep`: grids of spec overrides (the paper's ablation tables) run as mlflow
parent/child runs, with a results table and resume.  See docs/experiments.md."""
from __future__ import annotations

__all__ = ["Sweep", "load_grid", "plan"]


def __getattr__(name: str):
    if name == "Sweep":
        from .runner import Sweep
        return Sweep
    if name in ("load_grid", "plan"):
        from . import grid
        return getattr(grid, name)
    raise AttributeError(name)
