"""`vattfw validate SPEC [--set K=V ...] [--print]`"""
from __future__ import annotations

import yaml

from ..cli import add_spec_args, load_host
from ..spec.loader import load_spec


def register(sub) -> None:
    p = sub.add_parser("validate", help="validate a spec and optionally print it resolved")
    add_spec_args(p)
    p.add_argument("--print", dest="print_spec", action="store_true", help="print the resolved spec as YAML")
    p.set_defaults(func=run)


def run(args) -> int:
    spec = load_spec(args.spec, args.overrides, host=load_host(args))
    if args.print_spec:
        print(yaml.safe_dump(spec.model_dump(), sort_keys=False), end="")
    else:
        print(f"{args.spec}: ok")
    return 0
