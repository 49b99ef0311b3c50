"""Progress display for training: a rich bar on a terminal, sparse plain lines elsewhere."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column

from gimbench.trainer import StepRecord


def _losses(values: list[float | None]) -> str:
    return " ".join("·" if v is None else f"{v:.2f}" for v in values)


BAR = 10  # the least width the bar keeps
NOT_LOSSES = 45  # the other columns' width at most: description, "step/total", samples/s, time left, spaces


def _fit(text: str, width: int) -> str:
    """``text`` cut with an ellipsis to the width the other columns leave on a ``width``-column terminal."""
    room = max(8, width - BAR - NOT_LOSSES)
    return text if len(text) <= room else f"{text[:room - 1]}…"


def _whole() -> Column:
    """A progress column that is never cut (the step count, the rate)."""
    return Column(no_wrap=True, min_width=1)


class TrainingProgress:
    """Callable per step; use as a context manager around training."""

    def __init__(self, console: Console, total: int, *, enabled: bool) -> None:
        self.console, self.total, self.enabled = console, total, enabled
        # Every column but the bar keeps its width; the losses are cut to what the terminal leaves them (``_fit``).
        self.bar = Progress(
            TextColumn("[bold]{task.description}", table_column=_whole()), BarColumn(bar_width=None),
            MofNCompleteColumn(table_column=_whole()),
            TextColumn("{task.fields[losses]}", table_column=_whole()),
            TextColumn("{task.fields[rate]}", table_column=_whole()), TimeRemainingColumn(table_column=_whole()),
            console=console, transient=False,
        )
        self.task = None
        self.probe_task = None
        self.probes: int | None = None  # known once the run has started (modules x probe tasks)
        self.probed = 0
        self.plain = enabled and not console.is_terminal

    def __enter__(self) -> TrainingProgress:
        if self.enabled and not self.plain:
            self.bar.start()
            # Until the run starts, say what happens: the model, data and run folder are being built.
            self.task = self.bar.add_task("prepare", total=None, losses="building model and data", rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.probe_task is not None:
            self.bar.update(self.probe_task, total=1, completed=1, losses="done")
        if self.task is not None:
            self.bar.stop()

    def set_total(self, total: int) -> None:
        """The run's total steps, once known (a resumed run's come from its checkpoint)."""
        self.total = total
        if self.task is not None:
            self.bar.update(self.task, description="train", total=total, losses="first step", rate="")

    def set_probes(self, total: int) -> None:
        """How many (task, module) probes will run after training, once known."""
        self.probes = total

    def probing(self, task: str, module: int) -> None:
        """Called as each (task, module) probe starts, after training."""
        self.probed += 1
        text = f"{task} on module {module}"
        if self.task is not None:
            if self.probe_task is None:
                self.probe_task = self.bar.add_task("probe", total=self.probes, losses=text, rate="")
            self.bar.update(self.probe_task, completed=self.probed - 1, losses=text)
        elif self.plain:
            of = f"{self.probed}/{self.probes} " if self.probes else ""
            self.console.print(f"probe {of}{text}", highlight=False)

    def __call__(self, record: StepRecord) -> None:
        rate = f"{record.batch_size / record.seconds:.1f} samples/s"
        losses = f"losses {_losses(record.losses)}"
        if self.task is not None:
            losses = _fit(losses, self.console.width)
            self.bar.update(self.task, completed=record.step + 1, losses=losses, rate=rate)
        elif self.plain and ((record.step + 1) % max(1, self.total // 10) == 0 or record.step + 1 == self.total):
            self.console.print(f"step {record.step + 1}/{self.total}  {losses}  {rate}", highlight=False)
