"""`vattfw sweep GRID [--set K=V ...] [--profile FILE|none] [--out DIR] [--tracking-uri URI] [--check]`"""
from __future__ import annotations

from ..cli import load_host


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of spec overrides (one mlflow child run per point) and print "
                                     "the results table; a rerun resumes, skipping finished points")
    p.add_argument("grid", metavar="GRID", help="grid file: base spec, points (named overrides), metrics")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of every point (after the point's and the profile's overrides)")
    p.add_argument("--profile", default=None, metavar="FILE|none",
                   help="profile file: overrides for every point and per point (e.g. the CPU demo scale-down, "
                        "specs/ablations/demo-cpu.yaml); replaces the grid's own profile; 'none' = no profile")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="sweep folder (state, point run folders, results); default runs/sweeps/GRID[-PROFILE]")
    p.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="mlflow tracking URI when the spec's tracker names none; default $MLFLOW_TRACKING_URI, "
                        "else sqlite:///OUT/mlflow.db")
    p.add_argument("--check", action="store_true", help="validate every point and print the plan; run nothing")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..sweep.runner import Sweep
    sweep = Sweep(args.grid, args.overrides, args.profile, args.out, args.tracking_uri, host=load_host(args),
                  plugin_opts=args.plugin_opts)
    if args.check:
        for point in sweep.points:
            what = f"evaluate {point.checkpoint}" if point.checkpoint else "train + evaluate"
            done = sweep.state["points"].get(point.name, {}).get("status", "pending")
            print(f"{point.name}: ok ({what}; {done})")
        print(f"{args.grid}: {len(sweep.points)} points ok; metrics: {', '.join(sweep.grid.metrics)}; "
              f"folder {sweep.out}")
        return 0
    return sweep.run()
