"""The per-rank rows of distributed runs side by side: how busy, how fast and how large each rank was.

This is where the locking measurement reads: module-parallel GIM next to pipelined CPC on the same ranks.
"""

from __future__ import annotations

from rich.table import Table

from gimbench.htmlreport.collect import Entry, labels
from gimbench.report import _mib, _num, _table


def module_span(modules: list[int]) -> str:
    """``0-2`` for a contiguous run of module indices, else the indices listed."""
    if modules and modules == list(range(modules[0], modules[-1] + 1)) and len(modules) > 1:
        return f"{modules[0]}-{modules[-1]}"
    return ",".join(map(str, modules))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def ranks_table(entries: list[Entry]) -> Table | None:
    """One row per rank of every distributed run: its modules, samples/s, step time, idle (bubble) share of
    the step and step peak memory; ``None`` when no run is distributed."""
    found = [(e, label) for e, label in zip(entries, labels(entries), strict=True)
             if e.doc and e.doc.get("distributed")]
    if not found:
        return None
    table = _table("Ranks side by side (idle: share of step wall time spent waiting on peers; memory in MiB)",
                   ["run", "mode", "rank", "device", "modules", "samples/s", "step ms", "idle", "peak", "resident",
                    "memory measured by"])
    table.columns[0].justify = "left"
    for entry, label in found:
        block = entry.doc["distributed"]
        for row in block["ranks"]:
            step = row.get("step") or {}
            table.add_row(label, block["mode"], str(row["rank"]), str(row["device"]), module_span(row["modules"]),
                          _num(row.get("samples_per_s"), ".1f"), _num(step.get("time_ms"), ".1f"),
                          _percent(row.get("idle_fraction")), _mib(step.get("peak_memory_bytes")),
                          _mib(step.get("resident_bytes")), str(entry.doc.get("memory_backend", "-")))
    return table
