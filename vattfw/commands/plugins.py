"""`vattfw plugins [KIND [NAME]]`: what is installed, who provides it, how to configure it."""
from __future__ import annotations

from pydantic_core import PydanticUndefined

from ..cli import load_host
from ..errors import Problem, UserError
from ..hookspec import KINDS


def register(sub) -> None:
    p = sub.add_parser("plugins", help="list plugin components, or one component's Config fields")
    p.add_argument("kind", nargs="?", metavar="KIND", help=f"one of: {', '.join(KINDS)}")
    p.add_argument("name", nargs="?", metavar="NAME", help="a component of KIND: show its Config fields")
    p.set_defaults(func=run)


def run(args) -> int:
    host = load_host(args)
    if args.kind and args.kind not in KINDS:
        raise UserError(Problem(f"unknown kind {args.kind!r}; valid kinds: {', '.join(KINDS)}"))
    if args.name:
        _print_fields(host.get(args.kind, args.name))
        return 0
    rows = [("KIND", "NAME", "DISTRIBUTION", "VERSION", "PLUGIN")]
    for (kind, name), c in sorted(host.components.items(), key=lambda kv: (KINDS.index(kv[0][0]), kv[0][1])):
        if args.kind in (None, kind):
            rows.append((kind, name, c.dist or "-", c.version or "-", c.plugin))
    _table(rows)
    return 0


def _print_fields(comp) -> None:
    print(f"{comp.kind} {comp.name!r} from {comp.dist or '-'} {comp.version} (plugin {comp.plugin})")
    doc = (comp.config.__doc__ or "").strip()
    if doc:
        print(doc)
    rows = [("FIELD", "TYPE", "DEFAULT", "DESCRIPTION")]
    for name, f in comp.config.model_fields.items():
        default = "(required)" if f.is_required() else (
            "(factory)" if f.default is PydanticUndefined else repr(f.default))
        rows.append((name, _type_name(f.annotation), default, f.description or ""))
    _table(rows)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) if getattr(tp, "__args__", None) is None and hasattr(tp, "__name__") \
        else str(tp).replace("typing.", "")


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
