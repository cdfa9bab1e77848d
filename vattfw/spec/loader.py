"""YAML specs in, a validated :class:`Spec` out -- or a :class:`UserError` listing every problem.

Pipeline: read YAML (keeping each key's line) -> merge ``extends`` chains -> apply
``--set`` overrides -> validate the sections with pydantic -> validate every
``{name: PLUGIN, ...}`` section with that plugin's own Config -> cross-field checks.
"""
from __future__ import annotations

import copy
import difflib
import os
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import Problem, UserError
from ..host import default_host, plural
from .base import PluginSpec
from .schema import Spec

Path_ = tuple  # a location: keys (str) and list indices (int)
Origins = dict[Path_, tuple[str, int | None]]


# -- reading -----------------------------------------------------------------
# A spec is a few KiB written by hand.  These caps make a hostile file (an alias bomb, a
# 5,000-deep nesting, a multi-MB file) fail in well under a second, in bounded memory.
MAX_BYTES = 128 * 1024  # the largest shipped spec is ~9 KiB; PyYAML parses ~300 KiB/s
MAX_DEPTH = 64  # nesting levels (PyYAML's composer recurses once per level)
MAX_NODES = 100_000  # values after expanding every alias: what later passes walk


class SpecLoader(yaml.SafeLoader):
    """SafeLoader with limits: nesting depth, size after alias expansion (alias bombs),
    recursive aliases, and duplicate keys (an error, not a silent last-one-wins)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values under it, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:  # still being composed
                raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} refers to a value that "
                                                  f"contains it (a recursive alias)", event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                                              event.start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = size = self._size(node)
        if size > MAX_NODES:
            raise yaml.composer.ComposerError(None, None, f"expands to more than {MAX_NODES:,} values once its "
                                              f"aliases are expanded (an alias bomb?)", event.start_mark)
        return node

    def _size(self, node: Any) -> int:
        if isinstance(node, yaml.SequenceNode):
            return 1 + sum(self._sizes[id(v)] for v in node.value)
        if isinstance(node, yaml.MappingNode):
            return 1 + sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        return 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {seen[key]}); keep one",
                        key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> tuple[Any, Any]:
    """(data, root node) of one YAML document, under :class:`SpecLoader`'s limits."""
    loader = SpecLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def _decode(raw: bytes, file: str) -> str:
    """The spec's text; a binary, UTF-16 or oversized file is one clear problem."""
    if len(raw) > MAX_BYTES:
        raise UserError(Problem(f"the file is {len(raw):,} bytes; a spec is at most {MAX_BYTES // 1024} KiB "
                                f"of YAML (is this the right file?)", file=file))
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(Problem("the file is UTF-16 text; save it as UTF-8", file=file))
    if b"\0" in raw:
        at = raw.index(b"\0")
        raise UserError(Problem(f"NUL byte at offset {at}: a spec is UTF-8 text (a binary file?)", file=file,
                                line=raw.count(b"\n", 0, at) + 1))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(Problem(f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not UTF-8: a spec is "
                                f"UTF-8 text (a binary file, or another encoding?)", file=file,
                                line=raw.count(b"\n", 0, exc.start) + 1)) from None


def _yaml_problem(exc: yaml.YAMLError, file: str, text: str) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or str(exc)
    line = mark.line + 1 if mark else None
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: no mark, a position
        what = f"unacceptable character #x{exc.character:04x} at offset {exc.position}"
        line = text.count("\n", 0, exc.position) + 1
    return Problem("invalid YAML: " + " ".join(str(what).split()), file=file, line=line)


def read_yaml(path: Path) -> tuple[Any, Origins]:
    """Parse ``path``; return the data and, for every key, the (file, line) it came from."""
    if not path.is_file():
        raise UserError(Problem(f"spec file not found (looked for {path.resolve()})", file=str(path)))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(Problem(f"cannot read the spec: {exc.strerror}", file=str(path))) from None
    text = _decode(raw, str(path))
    try:
        data, node = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise UserError(_yaml_problem(exc, str(path), text)) from None
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


def load_raw(path: Path, _chain: tuple[Path, ...] = (), host: Any = None) -> tuple[dict, Origins]:
    """Read ``path`` and merge the files it ``extends`` (relative to itself) under it.  ``host``
    knows the plugins' Configs, so a plugin section nested in another is recognised too."""
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
    base, base_origins = load_raw(path.parent / parent, _chain + (path.resolve(),), host)
    replaced: set[Path_] = set()
    merged = deep_merge(base, data, replaced=replaced, plugin_at=lambda at: _is_plugin_section(at, base, host))
    # what the file replaced is located in the file: the base's lines under it no longer hold a value
    kept = {p: o for p, o in base_origins.items() if not any(len(p) > len(r) and p[:len(r)] == r for r in replaced)}
    return merged, {**kept, **origins}


def deep_merge(base: dict, over: dict, at: Path_ = (), replaced: set[Path_] | None = None,
               plugin_at: Any = None) -> dict:
    """Mappings merge key by key; anything else (lists included) in ``over`` replaces.  A plugin
    section (``plugin_at(path)``) merges only while it names the same plugin: another ``name``
    replaces the section, so no field of the base's plugin is left over.  ``replaced`` collects
    the paths where ``over`` replaced the base's value."""
    out = dict(base)
    for key, value in over.items():
        here, old = at + (key,), out.get(key)
        if plugin_at is not None and plugin_at(here):
            value, old = _named(value), _named(old)
            same = _same_plugin(old, value)
        else:
            same = isinstance(value, dict) and isinstance(old, dict)
        if same:
            out[key] = deep_merge(old, value, here, replaced, plugin_at)
            continue
        out[key] = value
        if replaced is not None:
            replaced.add(here)
    return out


def _same_plugin(old: Any, new: Any) -> bool:
    """Both name one plugin (a section without ``name`` tunes the base's plugin)."""
    if not (isinstance(old, dict) and isinstance(new, dict)) or old.get("name") is None:
        return False
    return new.get("name", old["name"]) == old["name"]


def _named(section: Any) -> Any:
    """``adam`` (the shorthand of a plugin section) -> ``{name: adam}``; anything else unchanged."""
    return {"name": section} if isinstance(section, str) else section


def _is_plugin_section(at: Path_, data: dict, host: Any) -> bool:
    """Whether the value at ``at`` is a ``{name: PLUGIN, ...}`` section: by the spec's schema and,
    inside a plugin's section, by the Config of the plugin ``data`` names there."""
    cls: Any = Spec
    node: Any = data
    for part in at:
        cls = _unwrap(cls)
        if isinstance(cls, type) and issubclass(cls, PluginSpec):
            name = _named(node).get("name") if isinstance(_named(node), dict) else None
            component = host.components.get((cls.kind, name)) if host is not None else None
            cls = component.config if component is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseModel) and isinstance(part, str):
            field = cls.model_fields.get(part)
            cls = field.annotation if field else None
        else:  # a key or index into a dict/list: its value type
            args = typing.get_args(cls)
            cls = args[-1] if args else None
        node = node.get(part) if isinstance(node, dict) else None
    cls = _unwrap(cls)
    return isinstance(cls, type) and issubclass(cls, PluginSpec)


# -- overrides ---------------------------------------------------------------
def apply_override(data: dict, text: str, origins: Origins, schema: type[BaseModel] | None = None) -> None:
    """Apply ``a.b.c=VALUE``; VALUE is YAML (numbers, lists ``[1, 2]``, mappings ``{a: 1}``).
    With ``schema``, the path is checked against it first (a ``--set`` error for a key it lacks)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(Problem(f"--set {text!r}: expected KEY=VALUE, e.g. train.steps=100"))
    try:
        value = parse_yaml(raw)[0] if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise UserError(Problem(f"--set {text!r}: value is not valid YAML ({exc.__class__.__name__})")) from None
    parts: list[str | int] = [int(p) if p.lstrip("-").isdigit() else p for p in key.strip().split(".")]
    if any(p == "" for p in parts):
        raise UserError(Problem("an empty key between dots", key, "--set"))
    plugins = _check_path(parts, key, schema) if schema is not None else set()
    _seed_defaults(data, parts[:-1])
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        node = _step_into(node, part, parts[i + 1], key, i + 1 in plugins)
    _assign(node, parts[-1], value, key)
    for i in range(1, len(parts) + 1):  # a key the override created is located at the command line
        origins.setdefault(tuple(parts[:i]), ("--set", None))
    origins[tuple(parts)] = ("--set", None)


def _check_path(parts: list[str | int], key: str, schema: type[BaseModel]) -> set[int]:
    """Check ``parts`` against the schema as far as it is fixed (sections, not plugins' own
    fields): an unknown key, or a key inside a plain value, is a ``--set`` error.  Returns the
    prefix lengths that name a plugin section (where ``name`` shorthand may be expanded)."""
    cls: Any = schema
    plugins = set()
    for i, part in enumerate(parts):
        at = ".".join(str(p) for p in parts[:i]) or "the spec"
        if isinstance(cls, type) and issubclass(cls, PluginSpec):
            plugins.add(i)
            return plugins
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            fields = cls.model_fields
            if part not in fields:
                close = difflib.get_close_matches(str(part), list(fields), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise UserError(Problem(f"unknown key {part!r} in {at}; {hint}valid keys: {', '.join(fields)}",
                                        key, "--set"))
            cls = _unwrap(fields[part].annotation)
            continue
        if cls in (int, float, str, bool) or typing.get_origin(cls) is typing.Literal:
            name = getattr(cls, "__name__", "choice")
            raise UserError(Problem(f"{at} is a plain value ({name}), it has no key {part!r}", key, "--set"))
        return plugins  # a dict or list: its keys are checked by validation
    if isinstance(cls, type) and issubclass(cls, PluginSpec):
        plugins.add(len(parts))
    return plugins


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


def _step_into(node: Any, part: str | int, nxt: str | int, key: str, plugin: bool = False) -> Any:
    if isinstance(node, list):
        if not isinstance(part, int) or not -len(node) <= part < len(node):
            raise UserError(Problem(f"--set {key}: index {part!r} out of range for a list of {len(node)}"))
        return node[part]
    if not isinstance(node, dict):
        raise UserError(Problem(f"--set {key}: {part!r} is inside a {type(node).__name__}, not a mapping"))
    value = node.get(part)
    if plugin and isinstance(value, str):  # ``optimizer: adam`` shorthand: tune that plugin
        node[part] = {"name": value}
    elif value is not None and not isinstance(value, (dict, list)):
        raise UserError(Problem(f"{part} is {value!r}, a plain value with no keys", key, "--set"))
    elif value is None:
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
    _rebase_paths(spec, (), origins, file)
    return spec


def _rebase_paths(obj: Any, at: Path_, origins: Origins, file: str) -> None:
    """An input file a base spec names (a field marked ``json_schema_extra={"path": True}``:
    vocabulary, word vectors, shard patterns) is relative to that base file, so a base works from
    wherever it is extended; paths the spec itself or ``--set`` gives stay relative to the working
    directory."""
    if isinstance(obj, PluginSpec):
        _rebase_paths(obj.config, at, origins, file)
    elif isinstance(obj, BaseModel):
        for name, field in type(obj).model_fields.items():
            value, extra = getattr(obj, name), field.json_schema_extra
            if isinstance(extra, dict) and extra.get("path"):
                rebased = _rebased(value, at + (name,), origins, file)
                if rebased != value:
                    setattr(obj, name, rebased)
            else:
                _rebase_paths(value, at + (name,), origins, file)
    elif isinstance(obj, (dict, list)):
        for key, value in (obj.items() if isinstance(obj, dict) else enumerate(obj)):
            _rebase_paths(value, at + (key,), origins, file)


def _rebased(value: Any, at: Path_, origins: Origins, file: str) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_rebased(v, at + (i,), origins, file) if at + (i,) in origins else
                           _rebased_one(v, origins.get(at, ("", None))[0], file) for i, v in enumerate(value))
    return _rebased_one(value, origins.get(at, ("", None))[0], file)


def _rebased_one(value: Any, source: str, file: str) -> Any:
    if not isinstance(value, str) or source in ("", "--set", file) or "://" in value or os.path.isabs(value) \
            or value.startswith("~"):
        return value
    return os.path.normpath(os.path.join(os.path.dirname(source), value))


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
        return [_locate(Problem(f"{host.missing(ref.kind, ref.name)}{hint}; registered {plural(ref.kind)}: {known}"),
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
    from .batch import batch_problems
    fixed = spec.mesh.fixed_batch_axes() is not None  # a -1 axis: sized by the devices, checked at run time
    split = batch_problems(spec.train.global_batch_size, spec.train.grad_accumulation,
                           spec.mesh.data if fixed else None, spec.mesh.fsdp if fixed else None)
    return [(tuple(p.path.split(".")), Problem(p.message)) for p in split]


def load_spec(path: str | Path, overrides: list[str] = (), host: Any = None) -> Spec:
    """Read, merge, override and validate a spec file; raise UserError on any problem."""
    host = host or default_host()
    data, origins = load_raw(Path(path), host=host)
    for text in overrides:
        apply_override(data, text, origins, Spec)
    return validate(data, host, origins, str(path))
