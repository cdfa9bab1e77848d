"""vattfw: VATT (video-audio-text transformers) as a config-driven plugin framework.

The Python API is two calls, the same for tests, scripts and third-party plugins::

    spec = vattfw.load_spec("specs/pretrain.yaml", overrides=["train.steps=10"])
    loss = vattfw.build("loss", {"name": "nce", "temperature": 0.07})
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .errors import PluginError, Problem, UserError
from .hookspec import KINDS, hookimpl
from .host import Component, PluginHost, default_host
from .spec.base import PluginConfig, PluginSpec, Section, plugin
from .spec.loader import load_spec
from .spec.schema import Spec

__version__ = "0.1.0"
__all__ = ["KINDS", "Component", "PluginConfig", "PluginError", "PluginHost", "PluginSpec", "Problem",
           "Section", "Spec", "UserError", "build", "default_host", "hookimpl", "load_spec", "plugin"]


def build(kind: str, config: dict[str, Any] | BaseModel, host: PluginHost | None = None, **deps: Any) -> Any:
    """Build a component of ``kind`` from ``{"name": NAME, ...fields}``, a resolved
    spec section, or an instance of a plugin's Config model.  ``deps`` are passed to the
    plugin's build function (e.g. ``params=`` for an optimizer)."""
    from .spec.loader import resolve_plugins
    host = host or default_host()
    if kind not in KINDS:
        raise UserError(Problem(f"unknown component kind {kind!r}; valid: {', '.join(KINDS)}"))
    ref = config if isinstance(config, PluginSpec) else plugin(kind).model_validate(config)
    problems = resolve_plugins(ref, host, (), {}, "")
    if problems:
        raise UserError([Problem(f"{kind} {ref.name!r}: {p.message}", p.path) for p in problems])
    return host.get(kind, ref.name).build(ref.config, **deps)
