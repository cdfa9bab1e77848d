"""The plugin host: a pluggy manager plus the registry of declared components.

Load order is deterministic: vattfw's own distribution first, then other distributions
sorted by name, then entry points sorted by name; explicitly requested plugins (``-p``)
last.  ``VATTFW_DISABLE_PLUGIN_AUTOLOAD=1`` skips every other distribution's entry
points (vattfw's built-ins still load; a framework without them cannot build anything),
and ``-p NAME`` then loads one by entry-point name or by module path.  ``-p no:NAME``
blocks the entry point NAME, as in pytest.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import os
import warnings
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, Iterable

import pluggy
from pydantic import BaseModel

from . import hookspec
from .errors import PluginError, Problem, UserError

SELF_DIST = "vattfw"
AUTOLOAD_ENV = "VATTFW_DISABLE_PLUGIN_AUTOLOAD"


class PluginWarning(UserWarning):
    """A plugin option that does nothing (``-p no:NAME`` naming no plugin); the CLI prints it as one line."""


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
    blocked: dict[str, md.EntryPoint | None] = field(default_factory=dict)  # -p no:NAME -> its entry point

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
        host.blocked = dict.fromkeys(sorted(blocked))
        for ep in _entry_points():
            is_self = ep.dist is not None and ep.dist.name == SELF_DIST
            if ep.name in blocked:
                host.blocked[ep.name] = ep
                continue
            if autoload or is_self or ep.name in wanted:
                host._load_entry_point(ep)
        for name in wanted:
            if name not in host.sources:
                host._load_module(name)
        host._warn_unknown_blocks()
        host.check_hooks()
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
        except Exception as exc:  # a broken third-party plugin: say whose it is, and how to go on without it
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) from distribution {dist} {version} "
                f"failed to import: {type(exc).__name__}: {exc}; run without it with -p no:{ep.name}"
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

    def _warn_unknown_blocks(self) -> None:
        for name in [n for n, ep in self.blocked.items() if ep is None]:
            installed = ", ".join(sorted({ep.name for ep in _entry_points()})) or "none"
            warnings.warn(f"-p no:{name}: no plugin of that name is installed, so it blocks nothing "
                          f"(entry points of group 'vattfw': {installed})", PluginWarning, stacklevel=3)

    def check_hooks(self) -> None:
        """Every hook a registered plugin implements must be one of :mod:`vattfw.hookspec`: a
        misspelled one (``vattfw_step_ended``) would silently never be called."""
        known = sorted(n for n in dir(hookspec) if n.startswith(f"{hookspec.PROJECT}_"))
        for name, caller in vars(self.pm.hook).items():
            if name.startswith("_") or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise PluginError(f"{self.describe(impl.plugin_name)} implements unknown hook {name!r}; {hint}"
                                  f"vattfw's hooks: {', '.join(known)}")

    def describe(self, plugin: str) -> str:
        """``plugin 'NAME' (DIST VERSION)``, and how to skip it when it came from an entry point."""
        source = self.sources.get(plugin)
        if source is None:
            return f"plugin {plugin!r}"
        if not source.dist:
            return f"plugin {plugin!r} (module, loaded by -p {plugin})"
        return f"plugin {plugin!r} ({source.dist} {source.version}; skip it with -p no:{plugin})"

    def blocked_provider(self, kind: str, name: str) -> str | None:
        """The ``-p no:`` plugin that declares component ``kind``/``name``, if one does.  Asked only
        when a spec names a component that is not registered, so a blocked plugin is imported (to read
        its declarations, never registered) only on that error path."""
        for plugin, ep in self.blocked.items():
            if ep is None:
                continue
            try:
                declared = ep.load().vattfw_components()
            except Exception:  # noqa: BLE001 - a blocked plugin may well be broken: then it is not this one
                continue
            if any(getattr(c, "kind", None) == kind and getattr(c, "name", None) == name for c in declared or ()):
                return plugin
        return None

    def missing(self, kind: str, name: str) -> str:
        """Why ``kind`` ``name`` is not registered, as the first words of an error."""
        plugin = self.blocked_provider(kind, name)
        if plugin is not None:
            ep = self.blocked[plugin]
            dist = f"{ep.dist.name} {ep.dist.version}" if ep is not None and ep.dist else "?"
            return f"{kind} {name!r} is blocked: plugin {plugin!r} ({dist}) provides it and -p no:{plugin} blocks it"
        return f"unknown {kind} {name!r}"

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
            raise UserError(Problem(f"{self.missing(kind, name)}; registered {plural(kind)}: {known}")) from None


    def component_for(self, kind: str, config: BaseModel) -> Component:
        """The component of ``kind`` whose Config model ``config`` is an instance of."""
        found = [c for (k, _), c in self.components.items() if k == kind and type(config) is c.config]
        if len(found) != 1:
            raise UserError(Problem(f"{type(config).__name__} is the Config of {len(found)} {kind}s; "
                                    f"pass {{'name': ..., ...}} to say which"))
        return found[0]


@cache
def default_host() -> PluginHost:
    """The process's plugin host, loaded from entry points on first use."""
    return PluginHost.load()


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
