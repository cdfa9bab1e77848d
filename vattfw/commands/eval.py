"""`vattfw eval SPEC --checkpoint PATH [--set K=V ...] [--only NAME ...] [--no-track]`

Builds the spec's model, loads the checkpoint (an engine checkpoint folder, a run's checkpoint
folder = its newest complete checkpoint, or a state-dict file), runs the evaluators of
``eval.evaluators``, prints a results table and sends the results to the spec's trackers
(``vattfw_eval_end``): with the default mlflow tracker and the same run folder, they land in
the pretraining's mlflow run.
"""
from __future__ import annotations

import json

from ..cli import add_spec_args, load_host
from ..spec.loader import load_spec


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint with the spec's evaluators (linear probes, retrieval, "
                                    "fine-tuning)")
    add_spec_args(p)
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="checkpoint folder (step_NNNNNNNNN), a run's checkpoints folder (newest used), or a .pt file")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only the evaluator with this name or tag (repeatable)")
    p.add_argument("--no-track", action="store_true", help="do not send the results to the spec's trackers")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="also write the results as JSON to FILE")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..eval.checkpoint import load_weights, read_checkpoint
    from ..eval.runner import run_evaluators
    from ..model import build_model
    host = load_host(args)
    spec = load_spec(args.spec, args.overrides, host=host)
    state, step, where = read_checkpoint(args.checkpoint)
    model = load_weights(build_model(spec.model, host), state, where=str(where))
    timings: dict[str, float] = {}
    results = run_evaluators(model, spec, host, only=args.only or None, timings=timings)
    step = int(step or 0)
    if not args.no_track:
        track(spec, host, step, results, str(where))
    print_table(results, step, str(where), timings)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"step": step, "checkpoint": str(where), "results": results}, f, indent=1)
    return 0


def track(spec, host, step: int, results: dict[str, float], checkpoint: str) -> None:
    from ..engine.tracking import Trackers
    from ..engine.trainer import run_dir_of
    run_dir = str(run_dir_of(spec))
    trackers = Trackers(spec, host, run_dir)
    try:
        trackers.hook.vattfw_run_start(spec=spec, run_dir=run_dir)
        trackers.hook.vattfw_eval_end(step=step, results=results)
        trackers.hook.vattfw_run_end(status="finished", summary={"step": step, "checkpoint": checkpoint})
    finally:
        trackers.close()


def print_table(results: dict[str, float], step: int, checkpoint: str, timings: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"evaluation of {checkpoint} (step {step})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in results.items():
        shown = f"{value:.0f}" if name.endswith(("/queries", "/pool")) else f"{value:.4f}"
        table.add_row(name, shown)
    for name, seconds in timings.items():
        table.add_row(f"[dim]{name} time[/dim]", f"[dim]{seconds:.1f} s[/dim]")
    Console(width=100).print(table)
