"""Graceful stop on SIGTERM/SIGINT, shared by the trainer and the sweep runner."""
from __future__ import annotations

import contextlib
import signal
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def handled(handler: Callable[[int, object], None]) -> Iterator[None]:
    """Route SIGTERM/SIGINT to ``handler`` inside the block, restoring the previous handlers after.
    Outside the main thread Python cannot install handlers; the block then runs without them."""
    old = {}
    for sig in STOP_SIGNALS:
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
