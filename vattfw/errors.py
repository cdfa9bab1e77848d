"""User errors: reported as one line per problem, exit code 2, never a traceback."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input."""

    message: str
    path: str = ""  # dotted location, e.g. ``model.backbones.video.size``
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.file and self.line else "")
        parts = [p for p in (where, self.path) if p]
        return ": ".join(parts + [self.message])


class UserError(Exception):
    """Bad input from the user (spec, file, command line).  The CLI prints each
    problem on its own line and exits with status 2."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PluginError(Exception):
    """A plugin is broken (fails to import, registers a clashing name, ...).
    The message names the distribution, the entry point and the hook."""


class DataError(Exception):
    """Training data cannot be read: storage still failing after its retries, or every sample
    tried for one batch slot unusable.  A run reports it in one line after a checkpoint
    (exit status 1): nothing about the spec is wrong, the data or the store is."""
