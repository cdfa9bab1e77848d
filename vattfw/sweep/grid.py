"""Grid files: a base spec plus named points, each a list of ``--set`` overrides.

A grid is validated by :class:`Grid` (unknown keys are errors) and every point is resolved
with :func:`vattfw.load_spec` *before* anything runs; all failing points are reported at once,
one ``point NAME: <problem>`` line each.

Overrides of a point are applied in this order (later wins):
``base`` file -> point ``set`` -> profile ``set`` -> profile ``points[NAME]`` -> command-line
``--set`` -> the sweep's own (``run.name``, ``run.output_dir``, an mlflow tracker).
A profile comes after the point so that it can scale the point's paper-size values down.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from ..errors import Problem, UserError
from ..spec.base import Section

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Point(Section):
    name: str = Field(description="Point name: the row of the table, the child run's name and its folder.")
    base: str | None = Field(None, description="Another base spec for this point (relative to the grid file); "
                                               "none = the grid's.")
    set: list[str] = Field(default_factory=list, description="Overrides of the base spec, KEY=VALUE as for --set.")
    checkpoint: str | None = Field(
        None, description="Evaluate only, no training: a checkpoint path (relative to the working directory, as "
                          "for `vattfw eval --checkpoint`), or '@POINT' for the final checkpoint of an earlier "
                          "point of this grid.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"point name {v!r} must be letters, digits, '_', '-' or '.' (it names a folder)")
        return v


class Profile(Section):
    description: str = Field("", description="What the profile changes and why (shown by `vattfw sweep --list`).")
    set: list[str] = Field(default_factory=list, description="Overrides applied to every point, after its own.")
    points: dict[str, list[str]] = Field(
        default_factory=dict, description="Extra overrides per point name, after `set` (e.g. the point's frame "
                                          "size scaled down); names not in the grid are ignored, so one profile "
                                          "can serve several grids.")
    metrics: list[str] | None = Field(None, description="Replaces the grid's metrics (a profile whose evaluators "
                                                        "report other names, e.g. the demo data's stand-ins).")


class Grid(Section):
    description: str = Field("", description="What the grid reproduces (e.g. the paper's table).")
    base: str = Field(description="The base spec, relative to the grid file.")
    profile: str | Profile | None = Field(
        None, description="Default profile: a profile file (relative to the grid file) or an inline profile; "
                          "`vattfw sweep --profile` replaces it.")
    points: list[Point] = Field(min_length=1, description="The grid's points, run in this order.")
    metrics: list[str] = Field(min_length=1, description="Metric names (as the evaluators report them, e.g. "
                                                         "linear_probe/top1) shown as the table's columns.")

    @field_validator("points")
    @classmethod
    def _unique(cls, points: list[Point]) -> list[Point]:
        seen: set[str] = set()
        for p in points:
            if p.name in seen:
                raise ValueError(f"two points are named {p.name!r}")
            seen.add(p.name)
        return points


@dataclass
class PointPlan:
    """One point, resolved: what the runner executes."""
    name: str
    overrides: list[str]
    spec: Any
    base: Path = Path()
    checkpoint: str | None = None          # a path, or "@POINT"
    digest: str = ""                       # what the point trains: the resolved spec but eval and tracking
    eval_digest: str = ""                  # what the point evaluates: the resolved eval section


def _read(path: Path, what: str) -> dict:
    if not path.is_file():
        raise UserError(Problem(f"{what} not found (looked for {path.resolve()})", file=str(path)))
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(Problem(f"invalid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                                line=mark.line + 1 if mark else None)) from None
    if not isinstance(data, dict):
        raise UserError(Problem(f"a {what} must be a mapping", file=str(path)))
    return data


def _validated(model: type[Section], data: dict, file: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError([Problem(e["msg"], ".".join(str(x) for x in e["loc"]), file)
                         for e in exc.errors()]) from None


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    return _validated(Grid, _read(path, "grid file"), str(path))


def load_profile(ref: str | Profile | None, relative_to: Path) -> Profile:
    if ref is None or ref == "none":
        return Profile()
    if isinstance(ref, Profile):
        return ref
    path = Path(ref) if Path(ref).is_absolute() or Path(ref).exists() else relative_to / ref
    return _validated(Profile, _read(path, "profile file"), str(path))


def point_overrides(grid: Grid, point: Point, profile: Profile, cli: list[str]) -> list[str]:
    return [*point.set, *profile.set, *profile.points.get(point.name, []), *cli]


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def digests(spec: Any, checkpoint: str | None) -> tuple[str, str]:
    """(training, evaluation) digests of a resolved point: a changed evaluator must not look like
    a changed training run, so that new columns cost an evaluation, not a pretraining.  Fields at
    their defaults are left out, so that a vattfw upgrade adding fields keeps finished points."""
    resolved = spec.model_dump(mode="json", exclude_defaults=True)
    evaluation = resolved.pop("eval", {})
    resolved.pop("tracking", None)
    return digest([resolved, checkpoint]), digest(evaluation)


def plan(grid_path: str | Path, cli: list[str] = (), profile: str | None = None, host: Any = None,
         forced: dict[str, list[str]] | None = None) -> tuple[Grid, Profile, list[PointPlan]]:
    """Load the grid and resolve every point with :func:`vattfw.load_spec`; raise one
    UserError listing every failing point (nothing has run yet).  ``forced[name]`` are the
    sweep's own overrides, applied last."""
    from ..spec.loader import load_spec
    grid_path = Path(grid_path)
    grid = load_grid(grid_path)
    here = grid_path.parent
    prof = load_profile(profile if profile is not None else grid.profile, here)
    base = here / grid.base
    problems: list[Problem] = []
    plans: list[PointPlan] = []
    earlier: set[str] = set()
    for point in grid.points:
        overrides = point_overrides(grid, point, prof, list(cli))
        ckpt = point.checkpoint
        if ckpt and ckpt.startswith("@") and ckpt[1:] not in earlier:
            problems.append(Problem(f"point {point.name}: checkpoint {ckpt!r} names no earlier point "
                                    f"(earlier: {', '.join(sorted(earlier)) or 'none'})", "checkpoint"))
        elif ckpt and not ckpt.startswith("@"):
            ckpt = str(Path(ckpt).resolve())
        earlier.add(point.name)
        point_base = (here / point.base) if point.base else base
        try:
            spec = load_spec(point_base, overrides + (forced or {}).get(point.name, []), host=host)
        except UserError as exc:
            problems += [Problem(f"point {point.name}: {p}") for p in exc.problems]
            continue
        plans.append(PointPlan(point.name, overrides, spec, point_base.resolve(), ckpt,
                               *digests(spec, point.checkpoint)))
    if problems:
        raise UserError(problems)
    if prof.metrics:
        grid = grid.model_copy(update={"metrics": prof.metrics})
    return grid, prof, plans
