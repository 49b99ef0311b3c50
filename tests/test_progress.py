"""The training progress: what it does before the first step, and probes counted against their known total."""

from __future__ import annotations

import io

from rich.console import Console

from gimbench.report.progress import TrainingProgress


def test_plain_progress_counts_probes_against_their_total():
    console = Console(file=io.StringIO(), width=80)
    with TrainingProgress(console, 0, enabled=True) as progress:
        progress.set_total(4)
        progress.set_probes(4)
        for task in ("speaker", "phone"):
            for module in (0, 1):
                progress.probing(task, module)
    lines = console.file.getvalue().splitlines()
    assert lines == ["probe 1/4 speaker on module 0", "probe 2/4 speaker on module 1", "probe 3/4 phone on module 0",
                     "probe 4/4 phone on module 1"]


def test_the_bar_says_what_it_prepares_then_trains_and_probes_with_a_total():
    console = Console(file=io.StringIO(), width=100, force_terminal=True)
    with TrainingProgress(console, 0, enabled=True) as progress:
        task = progress.bar.tasks[0]
        assert task.description == "prepare" and task.total is None and "building" in task.fields["losses"]
        progress.set_total(4)
        assert task.description == "train" and task.total == 4
        progress.set_probes(6)
        progress.probing("speaker", 0)
        assert progress.bar.tasks[1].total == 6
