"""The plugin host: a pluggy manager plus the registry of declared components.

Load order is deterministic: vattfw's own distribution first, then other distributions
sorted by name, then entry points sorted by name; explicitly requested plugins (``-p``)
last.  ``VATTFW_DISABLE_PLUGIN_AUTOLOAD=1`` skips every other distribution's entry
points (vattfw's built-ins still load; a framework without them cannot build anything),
and ``-p NAME`` then loads one by entry-point name or by module path.  ``-p no:NAME``
blocks the entry point NAME, as in pytest.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy
from pydantic import BaseModel

from . import hookspec
from .errors import PluginError, Problem, UserError

SELF_DIST = "vattfw"
AUTOLOAD_ENV = "VATTFW_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class Component:
    """What a plugin declares: ``build(config, **deps)`` makes a ``kind`` named ``name``
    from a validated ``config`` (an instance of the ``config`` model)."""

    kind: str
    name: str
    config: type[BaseModel]
    build: Callable[..., Any]
    # Filled in by the host: where the declaration came from.
    plugin: str = ""
    dist: str = ""
    version: str = ""


@dataclass
class _Source:
    plugin: str  # entry-point or module name
    dist: str = ""
    version: str = ""


@dataclass
class PluginHost:
    """Owns the pluggy manager and the component registry.  Build one per process
    with :meth:`load` (``vattfw.default_host()`` caches one for the Python API)."""

    pm: pluggy.PluginManager = field(default_factory=lambda: _new_manager())
    components: dict[tuple[str, str], Component] = field(default_factory=dict)
    sources: dict[str, _Source] = field(default_factory=dict)

    @classmethod
    def load(cls, requested: Iterable[str] = (), autoload: bool | None = None) -> "PluginHost":
        host = cls()
        requested = list(requested)
        blocked = {r[3:] for r in requested if r.startswith("no:")}
        for name in sorted(blocked):
            host.pm.set_blocked(name)
        if autoload is None:
            autoload = not os.environ.get(AUTOLOAD_ENV)
        wanted = [r for r in requested if not r.startswith("no:")]
        for ep in _entry_points():
            is_self = ep.dist is not None and ep.dist.name == SELF_DIST
            if ep.name in blocked or not (autoload or is_self or ep.name in wanted):
                continue
            host._load_entry_point(ep)
        for name in wanted:
            if name not in host.sources:
                host._load_module(name)
        host._collect_components()
        return host

    # -- loading -------------------------------------------------------------
    def _load_entry_point(self, ep: md.EntryPoint) -> None:
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else ""
        if ep.name in self.sources:
            other = self.sources[ep.name]
            raise PluginError(
                f"entry point {ep.name!r} in group 'vattfw' is declared by both "
                f"{other.dist} {other.version} and {dist} {version}; rename one of them"
            )
        try:
            module = ep.load()
        except Exception as exc:  # a broken third-party plugin: say whose it is
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) from distribution {dist} {version} "
                f"failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        self._register(module, _Source(ep.name, dist, version))

    def _load_module(self, name: str) -> None:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise UserError(
                Problem(f"-p {name}: no entry point or importable module of that name ({exc})")
            ) from exc
        self._register(module, _Source(name, "", ""))

    def _register(self, plugin: Any, source: _Source) -> None:
        try:
            self.pm.register(plugin, name=source.plugin)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin {source.plugin!r} ({source.dist}): {exc}") from exc
        self.sources[source.plugin] = source

    def _collect_components(self) -> None:
        # Call each plugin's registration hook on its own, so every component is
        # attributed to the plugin (and distribution) that declared it.
        for impl in reversed(self.pm.hook.vattfw_components.get_hookimpls()):
            source = self.sources.get(impl.plugin_name, _Source(impl.plugin_name))
            where = f"plugin {source.plugin!r} ({source.dist or 'not installed'})"
            declared = impl.function()
            if not isinstance(declared, (list, tuple)):
                raise PluginError(f"{where}: hook vattfw_components must return a list of Component, "
                                  f"got {type(declared).__name__}")
            for comp in declared:
                self._add(comp, source, where)

    def _add(self, comp: Any, source: _Source, where: str) -> None:
        if not isinstance(comp, Component):
            raise PluginError(f"{where}: hook vattfw_components returned {comp!r}, not a Component")
        if comp.kind not in hookspec.KINDS:
            raise PluginError(f"{where}: hook vattfw_components: component {comp.name!r} has kind "
                              f"{comp.kind!r}; valid kinds: {', '.join(hookspec.KINDS)}")
        if not (isinstance(comp.config, type) and issubclass(comp.config, BaseModel)):
            raise PluginError(f"{where}: component {comp.kind}/{comp.name}: config must be a pydantic model")
        key = (comp.kind, comp.name)
        if key in self.components:
            first = self.components[key]
            raise PluginError(
                f"{comp.kind} {comp.name!r} is registered twice: by plugin {first.plugin!r} "
                f"({first.dist} {first.version}) and by plugin {source.plugin!r} ({source.dist} {source.version})"
            )
        self.components[key] = Component(comp.kind, comp.name, comp.config, comp.build,
                                         source.plugin, source.dist, source.version)

    # -- queries -------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(name for k, name in self.components if k == kind)

    def get(self, kind: str, name: str) -> Component:
        if kind not in hookspec.KINDS:
            raise UserError(Problem(f"unknown component kind {kind!r}; valid: {', '.join(hookspec.KINDS)}"))
        try:
            return self.components[(kind, name)]
        except KeyError:
            known = ", ".join(repr(n) for n in self.names(kind)) or "none installed"
            raise UserError(Problem(f"unknown {kind} {name!r}; registered {plural(kind)}: {known}")) from None


    def component_for(self, kind: str, config: BaseModel) -> Component:
        """The component of ``kind`` whose Config model ``config`` is an instance of."""
        found = [c for (k, _), c in self.components.items() if k == kind and type(config) is c.config]
        if len(found) != 1:
            raise UserError(Problem(f"{type(config).__name__} is the Config of {len(found)} {kind}s; "
                                    f"pass {{'name': ..., ...}} to say which"))
        return found[0]


def plural(kind: str) -> str:
    return kind + ("es" if kind.endswith("s") else "s")


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspec.PROJECT)
    pm.add_hookspecs(hookspec)
    return pm


def _entry_points() -> list[md.EntryPoint]:
    eps = md.entry_points(group=hookspec.PROJECT)
    # vattfw itself first, then by distribution and entry-point name: the same order everywhere.
    def key(ep: md.EntryPoint) -> tuple[int, str, str]:
        dist = ep.dist.name if ep.dist else ""
        return (dist != SELF_DIST, dist, ep.name)
    seen: set[tuple[str, str]] = set()
    unique = []
    for ep in sorted(eps, key=key):
        ident = (ep.dist.name if ep.dist else "", ep.name)
        if ident not in seen:  # the same distribution can be visible twice on sys.path
            seen.add(ident)
            unique.append(ep)
    return unique
