"""The engine's view of a host loader: which data state belongs to which consumed batch."""
from __future__ import annotations

from collections import deque
from typing import Any


class TrackedLoader:
    """Wraps the host loader: remembers its state after each batch it hands out, so a
    checkpoint records the state of the last batch the *step* consumed, not of the batch
    the device loader's prefetch thread reached."""

    def __init__(self, loader: Any, keep: int = 256):
        self.loader = loader
        self.produced = 0
        self.states: deque[tuple[int, Any]] = deque(maxlen=keep)
        self.lift: set[str] = set()  # 1-D fields sent as [B, 1]
        self._first: dict | None = None
        self._it = None
        self.error: BaseException | None = None  # what ended the loader (raised in the upload thread)

    def peek(self) -> dict:
        if self._first is None:
            self._it = iter(self.loader)
            self._first = next(self._it)
            self.produced = 1
            self.states.append((1, self._state()))
        return self._first

    def _state(self) -> Any:
        sd = getattr(self.loader, "state_dict", None)
        return sd() if sd else None

    def __iter__(self):
        self.peek()
        first, self._first = self._first, {}
        yield self.lifted(first)
        while True:
            try:
                try:
                    batch = next(self._it)
                except StopIteration:  # a finite loader: start its next pass
                    self._it = iter(self.loader)
                    batch = next(self._it)
            except Exception as exc:  # noqa: BLE001 - kept for the main thread, which reports it
                self.error = exc  # (raised here, it would die with the device loader's upload thread)
                return
            self.produced += 1
            self.states.append((self.produced, self._state()))
            yield self.lifted(batch)

    def lifted(self, batch: dict) -> dict:
        """``batch`` as the step gets it: the ``lift`` fields given their candidate axis."""
        return {k: v[:, None] if k in self.lift else v for k, v in batch.items()} if self.lift else batch

    def state_after(self, consumed: int) -> Any:
        for n, state in reversed(self.states):
            if n == consumed:
                return state
        raise RuntimeError(f"data state after batch {consumed} was not kept (prefetch ran too far ahead)")
