"""Progress of a sweep: one rich bar over all runs on a terminal, a plain line per run elsewhere."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gimbench.sweep.grid import Configuration


def outcome(record: dict) -> str:
    """'complete in 12.3 s', 'failed (exit 2): <error line>' or 'interrupted (exit 130): <its line>'."""
    if record["status"] == "complete":
        return f"complete in {record['wall_seconds']:.1f} s"
    return f"{record['status']} (exit {record['exit_code']}): {record['error']}"


class SweepProgress:
    """``on_start``/``on_done`` callbacks for ``run_sweep``; use as a context manager around it."""

    def __init__(self, console: Console, total: int, *, enabled: bool) -> None:
        self.console, self.total, self.enabled = console, total, enabled
        self.bar = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.description}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=console)
        self.plain = enabled and not console.is_terminal
        self.task = None
        self.done = 0

    def __enter__(self) -> SweepProgress:
        if self.enabled and not self.plain:
            self.bar.start()
            self.task = self.bar.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.bar.stop()

    def on_start(self, config: Configuration) -> None:
        if self.task is not None:
            self.bar.update(self.task, description=config.label)

    def on_done(self, config: Configuration, record: dict) -> None:
        self.done += 1
        line = f"[{self.done}/{self.total}] {config.label}: {outcome(record)}"
        if self.task is not None:
            self.bar.update(self.task, completed=self.done)
            self.bar.console.print(line, highlight=False, markup=False)
        elif self.plain:
            self.console.print(line, highlight=False, markup=False)
