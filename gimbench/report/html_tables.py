"""Rich tables that set runs side by side: one row per run."""

from __future__ import annotations

import os

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gimbench.report.cells import Fitted, mib, num, titled_table
from gimbench.report.collect import Entry, labels
from gimbench.report.groups import groups
from gimbench.report.noise import iqr_text
from gimbench.report.terminal import ranks_table, share
from gimbench.report.verdict import environment_table, repeats_table, verdict
from gimbench.sweep.runner import made_by


def _probe_tasks(entries: list[Entry]) -> list[str]:
    return list(dict.fromkeys(t for e in entries if e.doc for t in e.doc.get("probe") or {}))


def _row(entry: Entry, tasks: list[str]) -> list[str]:
    if entry.doc is None:
        return [entry.record["status"], *("-" for _ in range(9 + len(tasks)))]
    step, probe = entry.doc["step"], entry.doc.get("probe") or {}
    return [entry.doc["status"], str(entry.config["depth"]), str(entry.config["batch_size"]),
            num(step["time_ms"], ".1f"), iqr_text(entry.doc),
            num(step.get("samples_per_second"), ".1f"), share(step.get("flops_fraction")),
            mib(step.get("peak_memory_bytes")), mib(step.get("floor_bytes")), num(step.get("peak_over_floor"), ".2f"),
            *(f"{100 * probe[t]['per_module'][-1]:.1f}%" if t in probe else "-" for t in tasks)]


def comparison_table(entries: list[Entry], *, short: bool = False) -> Table:
    """Per run: status, depth, batch, step time (median, IQR), throughput, utilisation (the step's achieved FLOP/s
    as a share of the device's reference rate), step peak, floor, their ratio, last-module probe accuracy per
    task, and the run folder (with ``short``, for a terminal: relative to the folder the runs share, named in
    the title, so that no path need fold)."""
    tasks = _probe_tasks(entries)
    table = titled_table("Runs side by side (step time in ms: median and IQR of the timed steps, ! where the IQR is "
                         "too wide to rank the run; util: share of the device's reference FLOP/s; memory in MiB)",
                         ["#", "run", "status", "depth", "batch", "step ms", "IQR", "samples/s", "util", "peak",
                          "floor", "peak/floor", *(f"probe {t} (last)" for t in tasks), "folder"])
    table.columns[1].justify = "left"
    common, folders = short_folders(entries) if short else (None, [str(e.folder) for e in entries])
    if common:
        table.title = f"{table.title}; folders under {common}"
    table.columns[-1].no_wrap = True  # a path is never broken mid-word: the table splits instead (``Fitted``)
    for number, (entry, label, folder) in enumerate(zip(entries, labels(entries), folders, strict=True), 1):
        table.add_row(str(number), label, *_row(entry, tasks), folder)
    return table


def short_folders(entries: list[Entry]) -> tuple[str | None, list[str]]:
    """The folder the runs share (``None`` for one run, or none shared) and each run's folder relative to it, so
    that the table's folder column holds short names that need not fold."""
    if len(entries) < 2:
        return None, [str(e.folder) for e in entries]
    common = os.path.commonpath([os.path.abspath(e.folder) for e in entries])
    if common == os.path.sep:
        return None, [str(e.folder) for e in entries]
    return common, [os.path.relpath(os.path.abspath(e.folder), common) for e in entries]


def _not_complete(entries: list[Entry], failed: bool) -> list[tuple[Entry, str]]:
    """The sweep runs that did not complete, with their labels: those that failed, or (``failed=False``) those
    interrupted or recorded as running."""
    return [(e, label) for e, label in zip(entries, labels(entries), strict=True)
            if e.doc is None and (e.record["status"] == "failed") == failed]


def failures_table(entries: list[Entry]) -> Table | None:
    """The sweep runs that failed, with exit code and error line; ``None`` when none did."""
    failed = _not_complete(entries, failed=True)
    if not failed:
        return None
    table = titled_table("Failed runs", ["run", "exit code", "error", "log"])
    table.columns[-1].no_wrap = True  # a path is never broken mid-word: the table splits instead (``Fitted``)
    for entry, label in failed:
        table.add_row(label, str(entry.record["exit_code"]), entry.record["error"] or entry.record["status"],
                      str(entry.folder.parent.parent / entry.record["log"]))
    return table


def unfinished_table(entries: list[Entry]) -> Table | None:
    """The sweep runs interrupted (by a signal, or with their sweep) or recorded as running, with the steps they
    completed and the command that continues them; ``None`` when there is none."""
    unfinished = _not_complete(entries, failed=False)
    if not unfinished:
        return None
    table = titled_table("Runs not finished: interrupted, or running (see the sweep line above)",
                         ["run", "status", "steps done", "continue with"])
    for entry, label in unfinished:
        record = entry.record
        table.add_row(label, record["status"], num(record.get("steps_completed"), "d"),
                      record.get("resume_command") or "the sweep's --resume")
    return table


def max_batch_table(entries: list[Entry]) -> Table | None:
    """The largest batch within the memory budget per run (``--find-max-batch``); ``None`` when no run has it."""
    found = [(e, label) for e, label in zip(entries, labels(entries), strict=True) if e.doc and e.doc.get("max_batch")]
    if not found:
        return None
    table = titled_table("Largest batch that fits the memory budget (--find-max-batch)",
                   ["run", "budget MiB", "max batch", "peak MiB at it", "backend", "batch sizes tried"])
    table.columns[0].justify = "left"
    for entry, label in found:
        mb = entry.doc["max_batch"]
        tried = ", ".join(f"{t['batch_size']}{'' if t['fits'] else ' (no)'}" for t in mb.get("tried", []))
        table.add_row(label, mib(mb["budget_bytes"]), str(mb["batch_size"]), mib(mb.get("peak_bytes")),
                      str(mb.get("backend", "-")), tried)
    return table


def distributed_table(entries: list[Entry]) -> Table | None:
    """Every rank of every distributed run (see ``ranks_table``); ``None`` when no run is distributed."""
    named = zip(entries, labels(entries), strict=True)
    return ranks_table([(label, e.doc["distributed"], e.doc["memory_backend"])
                        for e, label in named if e.doc and e.doc.get("distributed")])


def overview_tables(entries: list[Entry], *, short: bool = False) -> list[tuple[str, Table]]:
    """(name, table) for the comparison (``short``: its folders relative to theirs, for a terminal), the failures,
    the unfinished runs, the largest batches and the ranks, where there are any."""
    tables = [("comparison", comparison_table(entries, short=short)), ("failures", failures_table(entries)),
              ("unfinished", unfinished_table(entries)),
              ("max-batch", max_batch_table(entries)), ("ranks", distributed_table(entries))]
    return [(name, t) for name, t in tables if t is not None]


def sweep_note(sweep: dict) -> str:
    """One line on a sweep: its runs (those running now apart from those interrupted), its wall time against
    theirs, and its overhead; a sweep whose process was killed (sweep.json still says running, nobody holds its
    lock) says so."""
    runs, running = sweep["runs"], sweep.get("running_now", 0)  # running now, as collect found them
    interrupted = sum(r["status"] in ("interrupted", "running") for r in runs) - running
    failed = sum(r["status"] != "complete" for r in runs) - interrupted - running
    overhead = sweep.get("overhead")
    share = "-" if overhead is None else f"{100 * overhead:+.1f}%"
    status = sweep["status"]
    if sweep.get("stale"):
        status = (f"running, but its process (pid {sweep.get('pid', '?')}) is gone: killed? "
                  f"gimbench {made_by(sweep)} --resume {sweep['folder']} continues it")
    return (f"sweep {sweep['folder']} ({status}): {len(runs)} runs, {failed} failed"
            f"{f', {interrupted} interrupted' if interrupted else ''}{f', {running} running' if running else ''}"
            "; swept "
            f"{'; '.join(f'{k} ' + ', '.join(map(str, v)) for k, v in sweep['swept'].items()) or 'nothing'}; wall "
            f"{sweep.get('wall_seconds', 0):.1f} s against {sweep.get('runs_wall_seconds', 0):.1f} s for its run "
            f"processes (overhead {share})")


def answer_tables(entries: list[Entry]) -> list[tuple[str, Table, str | None]]:
    """(name, table, sentence or ``None``): the verdict per setting, the repeats, the environments."""
    tables = [*verdict(entries), ("repeats", repeats_table(groups(entries)), None)]
    if any(e.doc for e in entries):
        tables.append(("environment", environment_table(entries), None))
    return [(name, t, line) for name, t, line in tables if t is not None]


def side_by_side(entries: list[Entry], sweeps: list[dict]) -> Group:
    """What ``gimbench report`` prints: the verdict per setting, a line per sweep, then the overview tables."""
    answer = [part for _, t, line in answer_tables(entries) for part in (Fitted(t), *([Text(line)] if line else []))]
    overview = (Fitted(t, 2) for _, t in overview_tables(entries, short=True))
    return Group(*answer, *(Text(sweep_note(s)) for s in sweeps), *overview)
