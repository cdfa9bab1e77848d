"""`vattfw run SPEC [--set K=V ...] [--resume auto|never|PATH] [--dry-run]`"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..cli import add_spec_args, load_host
from ..spec.loader import load_spec


def register(sub) -> None:
    p = sub.add_parser("run", help="train from a spec (XLA-compiled SPMD step, checkpoints, mlflow tracking)")
    add_spec_args(p)
    p.add_argument("--resume", default=None, metavar="auto|never|PATH",
                   help="auto (default, from the spec): continue from the newest complete checkpoint of this run; "
                        "never: start afresh; PATH: a checkpoint or run folder")
    p.add_argument("--dry-run", action="store_true",
                   help="build, trace and compile one step with the real shapes, print parameters, FLOPs per step "
                        "and memory per device, then exit without training")
    p.add_argument("--no-track", action="store_true", help="run without the spec's trackers")
    p.set_defaults(func=run)


def run(args) -> int:
    host = load_host(args)
    spec = load_spec(args.spec, args.overrides, host=host)
    from ..engine.progress import print_summary
    from ..engine.trainer import Trainer
    prepare_data(spec)
    trainer = Trainer(spec, host, resume=args.resume, trackers=not args.no_track and not args.dry_run)
    if args.dry_run:
        # XLA prints its post-compilation memory analysis only at this debug level.
        os.environ.setdefault("PT_XLA_DEBUG_LEVEL", "1")
        return _print_dry_run(args.spec, trainer.dry_run())
    result = trainer.run()
    if result.main_process:
        print_summary(spec.run.name, result)
    return result.exit_code


def prepare_data(spec) -> None:
    """Build the demo data set first when the spec asks for it and it is missing (the quickstart)."""
    folder = spec.run.demo_data
    if not folder or (Path(folder) / "demo.json").is_file():
        return
    import fcntl
    Path(folder).mkdir(parents=True, exist_ok=True)
    # Several processes of one run (torchrun ranks, XLA processes on a host) start here at once:
    # the first builds, the others wait on the lock and then find demo.json.
    with open(Path(folder) / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (Path(folder) / "demo.json").is_file():
            from ..data.demo import build_demo
            print(f"building the demo data set in {folder} (once; a few minutes)", file=sys.stderr)
            build_demo(folder, bbb_clips=20, progress=False)  # the quickstart reads only synth/


def _print_dry_run(path: str, info: dict) -> int:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"vattfw run --dry-run {path}", show_header=False)
    fmt = {"parameters": _count, "trainable": _count, "flops_per_step": _flops,
           "state_bytes_per_device": lambda n: _bytes(n) + " (parameters + gradients + Adam state, by the plan)",
           "memory_per_device": lambda n: _bytes(n) + " (XLA's analysis of the compiled step: live buffers)"}
    for key, value in info.items():
        if key == "batch":
            for field, shape in value.items():
                table.add_row(f"batch.{field}", shape)
            continue
        table.add_row(key, fmt.get(key, str)(value) if value is not None else "n/a on this device")
    Console().print(table)
    print("dry run ok: compiled one step; nothing trained", file=sys.stderr)
    return 0


def _count(n: int) -> str:
    return f"{n:,} ({n / 1e6:.2f} M)"


def _flops(n: int) -> str:
    return f"{n:.4g} ({n / 1e12:.3f} TFLOP; forward + backward matmuls, per step, all devices)"


def _bytes(n: int) -> str:
    return f"{n / 2 ** 20:,.1f} MiB"
