"""`vattfw summary SPEC [--set K=V ...]`: parameters per model component, trainable and frozen
(loss terms that own parameters, e.g. a learnable temperature, are rows ``losses.<term>``)."""
from __future__ import annotations

from ..cli import add_spec_args, load_host
from ..spec.loader import load_spec


def register(sub) -> None:
    p = sub.add_parser("summary", help="build the spec's model and print its parameter counts per component")
    add_spec_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..model import attach_losses, build_model, parameter_table
    from ..objective import build_objective
    host = load_host(args)
    spec = load_spec(args.spec, args.overrides, host=host)
    with torch.device("meta"):  # shapes only: no memory for 300 M parameters
        model = build_model(spec.model, host=host)
        attach_losses(model, build_objective(spec.losses, host))  # trained with the model: counted too
    rows = parameter_table(model)
    width = max([len(r[0]) for r in rows] + [9])
    print(f"{'component':<{width}}  {'trainable':>13}  {'frozen':>13}")
    for name, trainable, frozen in rows:
        print(f"{name:<{width}}  {trainable:>13,}  {frozen:>13,}")
    total, frozen = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'total':<{width}}  {total:>13,}  {frozen:>13,}")
    print(f"total trainable parameters: {total}")
    return 0
