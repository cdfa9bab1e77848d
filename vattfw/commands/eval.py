"""`vattfw eval SPEC (--checkpoint PATH | --random-init) [--set K=V ...] [--only NAME ...] [--no-track]`

Builds the spec's model, loads the checkpoint (an engine checkpoint folder, a run's checkpoint
folder = its newest complete checkpoint, or a state-dict file), runs the evaluators of
``eval.evaluators``, prints a results table and sends the results to the plugins and the spec's
trackers (``vattfw_eval_end``, named ``eval/<tag>/<metric>`` as during training): with the default
mlflow tracker and the same run folder, they land in the pretraining's mlflow run.  ``--no-track``
leaves the spec's trackers out (other plugins still see the hooks), as in `vattfw run`.
``--random-init`` evaluates the model as seeded by ``run.seed`` before any training (``model.init``
not applied): the untrained baseline, labelled so in the table, the JSON and the trackers
(``eval/random_init/<tag>/<metric>``).
"""
from __future__ import annotations

import json

from ..cli import add_spec_args, load_host
from ..errors import UserError
from ..spec.loader import load_spec


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint with the spec's evaluators (linear probes, retrieval, "
                                    "fine-tuning)")
    add_spec_args(p)
    p.add_argument("--checkpoint", metavar="PATH",
                   help="checkpoint folder (step_NNNNNNNNN), a run's checkpoints folder (newest used), or a .pt file")
    p.add_argument("--random-init", action="store_true",
                   help="no checkpoint: evaluate the spec's model at its random initialisation (seeded by run.seed; "
                        "model.init not applied), the untrained baseline")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only the evaluator with this name or tag (repeatable)")
    p.add_argument("--no-track", action="store_true", help="run without the spec's trackers (as in vattfw run)")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="also write the results as JSON to FILE")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine.evaluate import evaluate_checkpoint, print_results
    _check_source(args)  # before loading anything: a usage slip costs no time
    host = load_host(args)
    spec = load_spec(args.spec, args.overrides, host=host)
    done = evaluate_checkpoint(spec, host, args.checkpoint, only=args.only or None, track=not args.no_track)
    print_results(done)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"step": done.step, "checkpoint": None if done.random_init else done.checkpoint,
                       "random_init": done.random_init, "source": done.checkpoint, "results": done.results},
                      f, indent=1)
    return 0


def _check_source(args) -> None:
    if args.random_init and args.checkpoint:
        raise UserError("--checkpoint and --random-init exclude each other: give one (trained weights, or the "
                        "untrained baseline)")
    if not args.random_init and not args.checkpoint:
        raise UserError("--checkpoint PATH is required (a checkpoint folder, a run's checkpoints folder or a .pt "
                        "file); or --random-init to evaluate the untrained model")
