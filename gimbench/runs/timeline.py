"""A run folder's memory timeline: the series of its peak memory step as ``memory-timeline.csv``, then the
picture of it, ``memory-timeline.png`` (drawn by the report layer from the CSV and results.json's block)."""

from __future__ import annotations

from pathlib import Path

from gimbench.profiling.timeline import Timeline
from gimbench.report.collect import Entry
from gimbench.results.atomic import write_atomic
from gimbench.results.timeline import CSV, PNG, csv_text


def write_timeline(folder: Path, timeline: Timeline | None, doc: dict) -> None:
    """Write the CSV and the PNG of ``timeline`` into ``folder`` (nothing without one); ``doc`` is the
    results.json the run is about to write, with its ``memory_timeline`` block.

    Raises:
        WriteError: the system refused a write.
    """
    if timeline is None:
        return
    write_atomic(folder / CSV, lambda f: f.write(csv_text(timeline).encode()))
    from gimbench.report.timeline import run_picture  # matplotlib: ~1 s, loaded only once a run has a timeline

    picture = run_picture(Entry(folder, doc))
    if picture is not None:
        write_atomic(folder / PNG, lambda f: f.write(picture))
