"""Trackers: built from ``spec.tracking.trackers`` and registered with the run's pluggy
manager, so they receive the lifecycle hooks like any other plugin.  Also the helpers
every tracker needs: a flattened, secret-free view of the spec."""
from __future__ import annotations

import re
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

SECRET_KEY = re.compile(r"(secret|password|passwd|token|credential|api_?key|access_?key|session_?key|"
                        r"private_?key|auth|signature)", re.I)
REDACTED = "<redacted>"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "l": [x, y]}`` -> ``{"a.b": 1, "l.0": x, "l.1": y}``; empty containers kept as ``[]``/``{}``."""
    out: dict[str, Any] = {}
    items: Iterator = iter(data.items()) if isinstance(data, dict) else enumerate(data) \
        if isinstance(data, (list, tuple)) else iter(())
    if not isinstance(data, (dict, list, tuple)):
        return {prefix: data}
    empty = True
    for key, value in items:
        empty = False
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    if empty and prefix:
        out[prefix] = "[]" if isinstance(data, (list, tuple)) else "{}"
    return out


def scrub(data: Any) -> Any:
    """A copy of ``data`` without secrets: values under secret-looking keys are redacted,
    credentials and query strings are removed from URLs."""
    if isinstance(data, dict):
        return {k: (REDACTED if SECRET_KEY.search(str(k)) and v not in (None, "") else scrub(v))
                for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [scrub(v) for v in data]
    if isinstance(data, str):
        return scrub_url(data)
    return data


def scrub_url(text: str) -> str:
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.scheme or not parts.netloc:
        return text
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = ""  # presigned URLs carry keys in the query
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Trackers:
    """The trackers of one run, registered with ``host.pm`` between ``start`` and ``close``."""

    def __init__(self, spec: Any, host: Any, run_dir: str, disabled: bool = False):
        from .. import build
        self.host = host
        self.names: list[str] = []
        self.objects: list[Any] = []
        if disabled:
            return
        for i, ref in enumerate(spec.tracking.trackers):
            tracker = build("tracker", ref, host, spec=spec, run_dir=run_dir)
            name = f"vattfw-run-tracker-{i}-{ref.name}"
            host.pm.register(tracker, name=name)
            self.names.append(name)
            self.objects.append(tracker)
        try:
            host.check_hooks()  # a tracker's misspelled hook is an error, as a plugin's is
        except Exception:
            self.close()
            raise

    @property
    def hook(self):
        return self.host.pm.hook

    def close(self) -> None:
        for name in self.names:
            plugin = self.host.pm.get_plugin(name)
            if plugin is not None:
                self.host.pm.unregister(plugin, name=name)
        self.names.clear()
