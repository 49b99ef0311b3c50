"""Write a report folder: index.html, the tables as SVG (rich's export), the plots as PNG, report.json."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gimbench.report import plots
from gimbench.report.collect import Entry, labels, result_from_doc
from gimbench.report.folder import SCHEMA, check_out, put, replace_whole
from gimbench.report.groups import groups
from gimbench.report.html_tables import answer_tables, overview_tables, sweep_note
from gimbench.report.page import Figure, Section, csv_text, render
from gimbench.report.terminal import compute_table, memory_table, probe_table, step_text, time_table
from gimbench.report.timeline import compare as compare_timelines
from gimbench.results.atomic import WriteError, refused
from gimbench.results.schema import write_json_atomic


def answer(entries: list[Entry]) -> Section:
    """The verdict per setting (its sentence as a note above the tables), repeats and environments, then the
    comparative plots: accuracy against memory, each setting's module bars on one scale, and each setting's
    utilisation per module."""
    found = answer_tables(entries)
    figures = [("accuracy-vs-memory", "probe accuracy vs step peak memory", plots.accuracy_vs_memory(entries)),
               *((f"module-bars-{i}", f"{g.name}: module memory, methods on one scale", plots.module_bars(g))
                 for i, g in enumerate(groups(entries), 1)),
               *((f"memory-timeline-{i}", f"{g.name}: memory over one step, methods side by side",
                  compare_timelines(g)) for i, g in enumerate(groups(entries), 1)),
               *((f"utilisation-{i}", f"{g.name}: share of the reference FLOP/s per module, methods side by side",
                  plots.utilisation_bars(g)) for i, g in enumerate(groups(entries), 1))]
    return Section("Verdict: each method against cpc", notes=[line for _, _, line in found if line],
                   tables=[(name, t) for name, t, _ in found],
                   figures=[Figure(name, caption, data) for name, caption, data in figures if data is not None])


def overview(entries: list[Entry], sweeps: list[dict]) -> Section:
    """Every run side by side, failures, the largest batches, and the plots over depth."""
    section = Section("All runs", notes=[sweep_note(s) for s in sweeps])
    section.tables = overview_tables(entries)
    if len(plots.depths(entries)) > 1:
        section.figures = [Figure("memory-vs-depth", "step peak memory vs depth", plots.memory_vs_depth(entries)),
                           Figure("time-vs-depth", "step time vs depth", plots.time_vs_depth(entries))]
    else:  # one depth: the trade-off between the rows, not single columns of dots
        found = ((f"memory-vs-time-{i}", f"{g.name}: step peak memory vs step time", plots.memory_vs_time(g))
                 for i, g in enumerate(groups(entries), 1))
        section.figures = [Figure(name, caption, data) for name, caption, data in found if data is not None]
    timeline = plots.rank_timeline(entries, labels(entries))
    if timeline is not None:
        section.figures.append(Figure("rank-timeline", "per-rank step: compute, transfer and waiting", timeline))
    return section


def run_section(index: int, entry: Entry, label: str) -> Section:
    """One completed run: its module tables (as ``gimbench run`` prints them), breakdown and probe plots."""
    result = result_from_doc(entry.doc, entry.folder)
    section = Section(f"{label}", notes=[str(entry.folder), *step_text(result).plain.splitlines()])
    section.tables = [(f"{index:03d}-time", time_table(result)), (f"{index:03d}-compute", compute_table(result)),
                      (f"{index:03d}-memory", memory_table(result))]
    if result.probe:
        section.tables.append((f"{index:03d}-probe", probe_table(result.probe, [m.name for m in result.modules])))
    figures = [(f"{index:03d}-probe", "probe accuracy per module", plots.probe_accuracy(entry, label))]
    section.figures = [Figure(name, caption, data) for name, caption, data in figures if data is not None]
    return section


def sections(entries: list[Entry], sweeps: list[dict]) -> list[Section]:
    """The overview, then one section per completed run."""
    named = enumerate(zip(entries, labels(entries), strict=True), 1)
    return [answer(entries), overview(entries, sweeps), *(run_section(i, e, label) for i, (e, label) in named if e.doc)]


def svg(table: Table, title: str) -> str:
    """The table as rich renders it in a terminal just wide enough for it, exported as SVG."""
    width = Console(width=400, file=io.StringIO()).measure(table).maximum
    console = Console(record=True, width=max(40, width), file=io.StringIO())
    console.print(table)
    return console.export_svg(title=title)


def report_folder(out: str | None, overwrite: bool) -> Path:
    """``--out`` or ``reports/report-<UTC time>``: a new or empty folder, or with ``--overwrite`` a previous report
    (``gimbench.report.folder`` refuses anything else, run folders above all). Nothing is written yet."""
    return check_out(out or str(Path("reports") / f"report-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"), overwrite)


def write_report(entries: list[Entry], sweeps: list[dict], folder: Path, sources: list[str]) -> Path:
    """Write the report to ``folder``, whole or not at all; returns the path of its index.html. A write the
    system refuses (read-only, full, no permission) is ``WriteError``: one line naming ``folder``."""
    parts = sections(entries, sweeps)
    try:
        replace_whole(folder, lambda into: _write(parts, entries, sweeps, into, sources))
    except OSError as e:
        cause = refused(e)
        if cause is None or isinstance(e, WriteError):
            raise
        raise WriteError(folder, cause) from None
    return folder / "index.html"


def _write(parts: list[Section], entries: list[Entry], sweeps: list[dict], folder: Path, sources: list[str]) -> None:
    for sub in ("tables", "plots", "csv"):
        (folder / sub).mkdir()
    for section in parts:
        for name, table in section.tables:
            put(folder / "tables" / f"{name}.svg", svg(table, f"gimbench report: {section.heading}").encode())
            put(folder / "csv" / f"{name}.csv", csv_text(table).encode())
        for figure in section.figures:
            put(folder / "plots" / f"{figure.name}.png", figure.data)
    write_json_atomic(folder / "report.json", {
        "schema": SCHEMA, "created": datetime.now(UTC).isoformat(timespec="seconds"), "sources": sources,
        "tables": {name: f"csv/{name}.csv" for section in parts for name, _ in section.tables},
        "sweeps": sweeps, "runs": [{"folder": str(e.folder), "label": label, "sweep_record": e.record,
                                    "results": e.doc} for e, label in zip(entries, labels(entries), strict=True)]})
    put(folder / "index.html", render(f"gimbench report ({len(entries)} runs)", parts).encode())
