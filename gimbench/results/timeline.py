"""A run's memory timeline as files: ``memory-timeline.csv`` (the series) and results.json's ``memory_timeline``
block (what the series is, its peak, and every (module, phase) span), read back by the report.

The CSV has a header and one row per point, ``t_ms`` from the step's start and ``allocated_bytes`` (absolute,
so its maximum is ``step.peak_memory_bytes``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from gimbench.profiling.timeline import Timeline

CSV = "memory-timeline.csv"
PNG = "memory-timeline.png"
HEADER = ("t_ms", "allocated_bytes")


def _ms(ns: int) -> float:
    return round(ns / 1e6, 6)


def timeline_block(timeline: Timeline | None, names: list[str]) -> dict | None:
    """results.json's ``memory_timeline``; ``None`` without a timeline. ``names`` are the modules' names."""
    if timeline is None:
        return None
    spans = [{"module": s.module, "name": names[s.module], "phase": s.phase, "start_ms": _ms(s.start_ns),
              "end_ms": _ms(s.end_ns)} for s in timeline.spans]
    return {"csv": CSV, "png": PNG, "source": timeline.source, "points": len(timeline.levels),
            "events": timeline.events, "duration_ms": _ms(timeline.duration_ns), "peak_bytes": timeline.peak,
            "peak_ms": _ms(timeline.peak_ns), "resident_bytes": timeline.resident, "spans": spans}


def csv_text(timeline: Timeline) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows((_ms(t), level) for t, level in zip(timeline.times_ns, timeline.levels, strict=True))
    return out.getvalue()


def read_series(folder: Path, block: dict) -> tuple[list[float], list[int]] | None:
    """``(t_ms, allocated_bytes)`` from a run folder's CSV; ``None`` when the file is missing or not ours."""
    try:
        rows = list(csv.reader((Path(folder) / block["csv"]).read_text().splitlines()))
        if tuple(rows[0]) != HEADER:
            return None
        return [float(t) for t, _ in rows[1:]], [int(b) for _, b in rows[1:]]
    except (OSError, ValueError, IndexError, KeyError, TypeError):
        return None
