"""Progress display: a rich bar (step, loss, clips/s, ETA) on a terminal, one line per
logged step otherwise (CI logs, pipes)."""
from __future__ import annotations

from typing import Any


class ProgressView:
    def __init__(self, total: int, start: int, console: Any = None, enabled: bool = True):
        from rich.console import Console
        self.console = console or Console(stderr=True)
        self.total, self.enabled = total, enabled
        self.live = enabled and self.console.is_terminal
        self.progress = None
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            self.progress = Progress(TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                                     TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} clips/s"),
                                     TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
            self.task = self.progress.add_task("train", total=total, completed=start, loss="-", rate="-")

    def __enter__(self) -> "ProgressView":
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step)

    def update(self, metrics: dict[str, float], step: int | None = None) -> None:
        loss = f"{metrics['loss']:.4f}"
        rate = f"{metrics['clips_per_s']:.2f}" if "clips_per_s" in metrics else "-"
        if self.progress is not None:
            self.progress.update(self.task, loss=loss, rate=rate)
        elif self.enabled:
            extra = f" mfu {metrics['mfu']:.3f}" if "mfu" in metrics else ""
            self.console.print(f"step {step}/{self.total} loss {loss} lr {metrics['lr']:.3g} "
                               f"grad_norm {metrics['grad_norm']:.3g} clips/s {rate}{extra}", highlight=False)


def print_summary(name: str, result: Any) -> None:
    """The run summary (a Trainer.run() result's) as a table on stderr, titled with how the run ended."""
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"vattfw run {name}: {result.status}", show_header=False)
    for k, v in result.summary.items():
        table.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    Console(stderr=True).print(table)
