"""`vattfw bench [SUITE ...] [--size paper|cpu|toy] [--tracking-uri URI]`: run benchmark suites,
each one mlflow run in the experiment ``vattfw-bench``, and print a table per suite."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("bench", help="run benchmark suites (model, data, loss, train_throughput, ...) and log them to mlflow")
    p.add_argument("suites", nargs="*", metavar="SUITE", help="suites to run (default: all); see --list")
    p.add_argument("--size", choices=["paper", "cpu", "toy"], default="paper",
                   help="problem size (toy: small, for smoke tests; cpu: between the two, where a suite has it)")
    p.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="mlflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///bench/mlflow.db)")
    p.add_argument("--list", action="store_true", help="list the suites and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine.bench import run_suites
    return run_suites(args.suites, size=args.size, tracking_uri=args.tracking_uri, list_only=args.list)
