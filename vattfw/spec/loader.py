"""YAML specs in, a validated :class:`Spec` out -- or a :class:`UserError` listing every problem.

Pipeline: read YAML (keeping each key's line) -> merge ``extends`` chains -> apply
``--set`` overrides -> validate the sections with pydantic -> validate every
``{name: PLUGIN, ...}`` section with that plugin's own Config -> cross-field checks.
"""
from __future__ import annotations

import copy
import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import Problem, UserError
from ..host import plural
from .base import PluginSpec
from .schema import Spec

Path_ = tuple  # a location: keys (str) and list indices (int)
Origins = dict[Path_, tuple[str, int | None]]


# -- reading -----------------------------------------------------------------
def read_yaml(path: Path) -> tuple[Any, Origins]:
    """Parse ``path``; return the data and, for every key, the (file, line) it came from."""
    if not path.is_file():
        raise UserError(Problem(f"spec file not found (looked for {path.resolve()})", file=str(path)))
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        what = getattr(exc, "problem", None) or str(exc)
        raise UserError(Problem(f"invalid YAML: {what}", file=str(path),
                                line=mark.line + 1 if mark else None)) from None
    origins: Origins = {}
    _collect_lines(node, (), str(path), origins)
    return ({} if data is None else data), origins


def _collect_lines(node: Any, at: Path_, file: str, out: Origins) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            here = at + (key.value,)
            out[here] = (file, key.start_mark.line + 1)
            _collect_lines(value, here, file, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            out[at + (i,)] = (file, value.start_mark.line + 1)
            _collect_lines(value, at + (i,), file, out)


def load_raw(path: Path, _chain: tuple[Path, ...] = ()) -> tuple[dict, Origins]:
    """Read ``path`` and merge the files it ``extends`` (relative to itself) under it."""
    path = Path(path)
    if path.resolve() in _chain:
        cycle = " -> ".join(str(p) for p in _chain + (path.resolve(),))
        raise UserError(Problem(f"extends forms a cycle: {cycle}", file=str(path), path="extends"))
    data, origins = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(Problem(f"a spec must be a mapping of sections, got {type(data).__name__}", file=str(path)))
    parent = data.pop("extends", None)
    if parent is None:
        return data, origins
    if not isinstance(parent, str):
        raise UserError(Problem(f"got {parent!r}; expected a path to a base spec", file=str(path),
                                line=origins.get(("extends",), (None, None))[1], path="extends"))
    base, base_origins = load_raw(path.parent / parent, _chain + (path.resolve(),))
    return deep_merge(base, data), {**base_origins, **origins}


def deep_merge(base: dict, over: dict) -> dict:
    """Mappings merge key by key; anything else (lists included) in ``over`` replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# -- overrides ---------------------------------------------------------------
def apply_override(data: dict, text: str, origins: Origins) -> None:
    """Apply ``a.b.c=VALUE``; VALUE is YAML (numbers, lists ``[1, 2]``, mappings ``{a: 1}``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(Problem(f"--set {text!r}: expected KEY=VALUE, e.g. train.steps=100"))
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(Problem(f"--set {text!r}: value is not valid YAML ({exc.__class__.__name__})")) from None
    parts: list[str | int] = [int(p) if p.lstrip("-").isdigit() else p for p in key.strip().split(".")]
    _seed_defaults(data, parts[:-1])
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        node = _step_into(node, part, parts[i + 1], key)
    _assign(node, parts[-1], value, key)
    origins[tuple(parts)] = ("--set", None)


def _seed_defaults(data: dict, parts: list[str | int]) -> None:
    """Copy the schema's defaults into sections the file left out, so that
    ``--set optimizer.lr=1e-3`` tunes the default optimizer rather than replacing it."""
    node: Any = data
    default: Any = Spec()
    for part in parts:
        if isinstance(default, BaseModel) and isinstance(part, str) and part in type(default).model_fields:
            default = getattr(default, part)
        elif isinstance(default, (dict, list)) and _has(default, part):
            default = default[part]
        else:
            return
        if not isinstance(node, (dict, list)):
            return
        if not _has(node, part):
            if isinstance(node, list):
                return
            node[part] = default.model_dump() if isinstance(default, BaseModel) else copy.deepcopy(default)
        node = node[part]


def _has(container: Any, part: str | int) -> bool:
    if isinstance(container, dict):
        return part in container
    return isinstance(part, int) and -len(container) <= part < len(container)


def _step_into(node: Any, part: str | int, nxt: str | int, key: str) -> Any:
    if isinstance(node, list):
        if not isinstance(part, int) or not -len(node) <= part < len(node):
            raise UserError(Problem(f"--set {key}: index {part!r} out of range for a list of {len(node)}"))
        return node[part]
    if not isinstance(node, dict):
        raise UserError(Problem(f"--set {key}: {part!r} is inside a {type(node).__name__}, not a mapping"))
    if not isinstance(node.get(part), (dict, list)):
        node[part] = {}
    return node[part]


def _assign(node: Any, part: str | int, value: Any, key: str) -> None:
    if isinstance(node, list):
        _step_into(node, part, None, key)  # bounds check
        node[part] = value  # type: ignore[index]
    else:
        node[part] = value


# -- validation --------------------------------------------------------------
def validate(data: dict, host: Any, origins: Origins | None = None, file: str = "") -> Spec:
    origins = origins or {}
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise UserError(problems_from(exc, Spec, (), origins, file)) from None
    problems = resolve_plugins(spec, host, (), origins, file)
    problems += [_locate(p, path, origins, file) for path, p in cross_checks(spec)]
    if problems:
        raise UserError(problems)
    return spec


def resolve_plugins(obj: Any, host: Any, at: Path_, origins: Origins, file: str) -> list[Problem]:
    """Validate every PluginSpec under ``obj`` with its plugin's Config (in place)."""
    if isinstance(obj, PluginSpec):
        return _resolve_one(obj, host, at, origins, file)
    if isinstance(obj, BaseModel):
        items = ((name, getattr(obj, name)) for name in type(obj).model_fields)
    elif isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return []
    return [p for key, value in items for p in resolve_plugins(value, host, at + (key,), origins, file)]


def _resolve_one(ref: PluginSpec, host: Any, at: Path_, origins: Origins, file: str) -> list[Problem]:
    if ref.config is not None and ref.name is None:  # built from a Config instance
        ref.name = host.component_for(ref.kind, ref.config).name
        return []
    known = ", ".join(host.names(ref.kind)) or "none installed"
    if ref.name is None:
        return [_locate(Problem(f"missing required field 'name'; registered {plural(ref.kind)}: {known}"),
                        at + ("name",), origins, file)]
    if (ref.kind, ref.name) not in host.components:
        close = difflib.get_close_matches(ref.name, host.names(ref.kind), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [_locate(Problem(f"unknown {ref.kind} {ref.name!r}{hint}; registered {plural(ref.kind)}: {known}"),
                        at + ("name",), origins, file)]
    config_cls = host.components[(ref.kind, ref.name)].config
    try:
        ref.config = config_cls.model_validate(ref.fields)
    except ValidationError as exc:
        return problems_from(exc, config_cls, at, origins, file)
    return resolve_plugins(ref.config, host, at, origins, file)


def problems_from(exc: ValidationError, root: type[BaseModel], at: Path_,
                  origins: Origins, file: str) -> list[Problem]:
    """One Problem per pydantic error, located by dotted path and source line."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            known = _known_keys(root, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            msg = f"unknown key {loc[-1]!r}; {hint}valid keys: {', '.join(known)}"
        elif err["type"] == "missing":
            msg = "missing required field"
        else:
            text = err["msg"]
            text = text.removeprefix("Value error, ")
            given = err.get("input")
            msg = f"got {given!r}; {text[0].lower()}{text[1:]}" if not isinstance(given, dict) else text
        out.append(_locate(Problem(msg), at + loc, origins, file))
    return out


def _locate(problem: Problem, loc: Path_, origins: Origins, file: str) -> Problem:
    probe = tuple(loc)
    while probe and probe not in origins:
        probe = probe[:-1]
    src, line = origins.get(probe, (file, None))
    return Problem(problem.message, ".".join(str(p) for p in loc), src, line)


def _known_keys(root: type[BaseModel], loc: Path_) -> list[str]:
    cls: Any = root
    for part in loc:
        cls = _unwrap(cls)
        if isinstance(cls, type) and issubclass(cls, BaseModel) and isinstance(part, str):
            field = cls.model_fields.get(part)
            cls = field.annotation if field else None
        else:  # a key or index into a dict/list: descend into its value type
            args = typing.get_args(cls)
            cls = args[-1] if args else None
    cls = _unwrap(cls)
    if isinstance(cls, type) and issubclass(cls, BaseModel) and not issubclass(cls, PluginSpec):
        return list(cls.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    """Optional[X] -> X; anything else unchanged."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return args[0]
    return tp


def cross_checks(spec: Spec) -> list[tuple[Path_, Problem]]:
    """Checks that involve several fields; each names the field to change."""
    out = []
    t = spec.train
    if t.global_batch_size % t.grad_accumulation:
        out.append((("train", "grad_accumulation"), Problem(
            f"got {t.grad_accumulation}; global_batch_size {t.global_batch_size} must divide by it")))
    shards = spec.mesh.fixed_batch_axes()
    micro = t.global_batch_size // t.grad_accumulation
    if shards and micro % shards:
        out.append((("train", "global_batch_size"), Problem(
            f"got {t.global_batch_size}; each micro-batch ({micro} clips) must divide by the mesh's "
            f"data x fsdp size ({spec.mesh.data} x {spec.mesh.fsdp} = {shards})")))
    return out


def load_spec(path: str | Path, overrides: list[str] = (), host: Any = None) -> Spec:
    """Read, merge, override and validate a spec file; raise UserError on any problem."""
    host = host or default_host()
    data, origins = load_raw(Path(path))
    for text in overrides:
        apply_override(data, text, origins)
    return validate(data, host, origins, str(path))


def default_host() -> Any:
    from .. import default_host as _default
    return _default()
