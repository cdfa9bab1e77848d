"""`vattfw eval SPEC --checkpoint PATH [--set K=V ...] [--only NAME ...] [--no-track]`

Builds the spec's model, loads the checkpoint (an engine checkpoint folder, a run's checkpoint
folder = its newest complete checkpoint, or a state-dict file), runs the evaluators of
``eval.evaluators``, prints a results table and sends the results to the plugins and the spec's
trackers (``vattfw_eval_end``, named ``eval/<tag>/<metric>`` as during training): with the default
mlflow tracker and the same run folder, they land in the pretraining's mlflow run.  ``--no-track``
leaves the spec's trackers out (other plugins still see the hooks), as in `vattfw run`.
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
    p.add_argument("--no-track", action="store_true", help="run without the spec's trackers (as in vattfw run)")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="also write the results as JSON to FILE")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine.evaluate import evaluate_checkpoint, print_results
    host = load_host(args)
    spec = load_spec(args.spec, args.overrides, host=host)
    done = evaluate_checkpoint(spec, host, args.checkpoint, only=args.only or None, track=not args.no_track)
    print_results(done)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"step": done.step, "checkpoint": done.checkpoint, "results": done.results}, f, indent=1)
    return 0
