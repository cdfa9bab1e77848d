"""`vattfw` command line.  Each sub-command lives in ``vattfw/commands/<name>.py`` and
exposes ``register(subparsers)``; user errors become one line per problem and exit 2."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from .errors import PluginError, UserError

COMMANDS = ["plugins", "validate", "run", "bench", "summary", "eval", "sweep", "data", "checkpoint"]
EXIT_USER_ERROR = 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vattfw", description="VATT pretraining and evaluation from YAML specs.")
    top.add_argument("-p", dest="plugin_opts", action="append", default=[], metavar="NAME",
                     help="load plugin NAME (entry point or module) even with autoload disabled; "
                          "'no:NAME' blocks the entry point NAME")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"vattfw.commands.{name}").register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _one_line_plugin_warnings()
    _log_lines_name_their_process()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    except PluginError as exc:
        print(f"plugin error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _one_line_plugin_warnings() -> None:
    from .host import PluginWarning
    default = warnings.showwarning

    def show(message, category, *rest, **kw):
        if issubclass(category, PluginWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            default(message, category, *rest, **kw)
    warnings.showwarning = show


class _ProcessLogFormat(logging.Formatter):
    """A log line as its message; in a run of several processes, one other than the first
    names itself (each reads its own shards: a skipped sample there is that process's news)."""

    def format(self, record: logging.LogRecord) -> str:
        from .backend import runtime_process
        index, count = runtime_process()
        text = super().format(record)
        return f"process {index}: {text}" if count > 1 and index else text


class _Stderr(logging.StreamHandler):
    """Writes to the sys.stderr of the moment (a test or a tool may have replaced it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _log_lines_name_their_process() -> None:
    logger = logging.getLogger("vattfw")
    if not any(isinstance(h.formatter, _ProcessLogFormat) for h in logger.handlers):
        handler = _Stderr()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(_ProcessLogFormat("%(message)s"))
        logger.addHandler(handler)


def load_host(args: argparse.Namespace):
    from .host import PluginHost
    return PluginHost.load(requested=args.plugin_opts)


def add_spec_args(p: argparse.ArgumentParser) -> None:
    """SPEC and --set, shared by every command that reads a spec."""
    p.add_argument("spec", metavar="SPEC", help="path to a YAML spec")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set train.steps=100 --set mesh.data=4 (YAML values)")


if __name__ == "__main__":
    sys.exit(main())
