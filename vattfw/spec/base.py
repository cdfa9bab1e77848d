"""Building blocks shared by every spec section and every plugin Config."""
from __future__ import annotations

import re
from functools import cache
from typing import Any, ClassVar

from ..hookspec import KINDS
from pydantic import BaseModel, ConfigDict, SerializationInfo, model_serializer, model_validator


def check_regex(pattern: str) -> str:
    """``pattern`` if it compiles, else a ValueError a pydantic validator reports under its field
    (for fields matched against parameter names: ``train.lr_scale``, an optimizer's ``clip_params``)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression ({exc})") from None
    return pattern


class Section(BaseModel):
    """Base of every spec section and plugin Config: unknown keys are errors,
    assignments are validated, YAML ints are accepted where a string is expected, and
    floats must be finite (YAML reads ``.inf`` and ``.nan`` as numbers; no field means them)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True,
                              coerce_numbers_to_str=True, protected_namespaces=(), allow_inf_nan=False)


# Plugin Configs derive from this too; the alias reads better in plugin code.
PluginConfig = Section


class PluginSpec(BaseModel):
    """A ``{name: PLUGIN, ...fields}`` section.  Pydantic keeps the raw fields; the
    spec loader then validates them with the named plugin's own Config model (it
    needs the plugin host, which plain pydantic validation does not have)."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str] = ""

    name: str | None = None
    fields: dict[str, Any] = {}
    config: Any = None  # the plugin's validated Config, set by the loader

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if isinstance(data, str):  # shorthand: ``optimizer: adam``
            return {"name": data, "fields": {}}
        if isinstance(data, BaseModel) and not isinstance(data, PluginSpec):
            return {"name": None, "fields": {}, "config": data}
        if isinstance(data, dict) and "fields" not in data:
            rest = dict(data)
            return {"name": rest.pop("name", None), "fields": rest}
        return data

    @model_serializer
    def _dump(self, info: SerializationInfo) -> dict[str, Any]:
        body = (self.config.model_dump(mode=info.mode, exclude_defaults=info.exclude_defaults)
                if isinstance(self.config, BaseModel) else dict(self.fields))
        return {"name": self.name, **body}


@cache
def plugin(kind: str) -> type[PluginSpec]:
    """The spec field type for a component of ``kind``: ``backbone: plugin("backbone")``."""
    name = f"{kind.title()}Spec"
    return type(name, (PluginSpec,), {"__annotations__": {"kind": ClassVar[str]}, "kind": kind,
                                      "__module__": __name__, "__qualname__": name})


# Module attributes, so that pickle (loader worker processes) finds them by name.
globals().update({plugin(kind).__name__: plugin(kind) for kind in KINDS})
