"""The answer first: per setting, every method against plain CPC, and one sentence computed from the numbers."""

from __future__ import annotations

from rich.table import Table

from gimbench.profiling.resident import KINDS
from gimbench.report.cells import titled_table
from gimbench.report.collect import Entry
from gimbench.report.groups import Cell, Setting, Spread, groups
from gimbench.report.noise import noise_note, percent, ratio_text, time_spread
from gimbench.report.terminal import module_span

MIB = 2**20


def peak(doc: dict) -> float | None:
    return doc["step"].get("peak_memory_bytes")


def floor(doc: dict) -> float | None:
    return doc["step"].get("floor_bytes")


def step_ms(doc: dict) -> float | None:
    return doc["step"].get("time_ms")


def rate(doc: dict) -> float | None:
    return doc["step"].get("samples_per_second")


def accuracy(task: str):
    """Last-module test accuracy of probe ``task`` (a fraction), ``None`` without that probe."""
    def read(doc: dict) -> float | None:
        probe = (doc.get("probe") or {}).get(task)
        return probe["per_module"][-1] if probe else None

    return read


def tasks(group: Setting) -> list[str]:
    return list(dict.fromkeys(t for c in group.cells for e in c.runs for t in e.doc.get("probe") or {}))


def mean_ratio(cell: Cell, base: Cell, read) -> float | None:
    """The row's mean of ``read`` over the baseline's; ``None`` where either has none (or the baseline's is 0)."""
    a, b = cell.spread(read), base.spread(read)
    return None if a is None or b is None or not b.mean else a.mean / b.mean


def ratio(cell: Cell, base: Cell, read) -> str:
    value = mean_ratio(cell, base, read)
    return "-" if value is None else f"{value:.2f}x"


def time_ratio(cell: Cell, base: Cell, read=step_ms) -> str:
    """A step-time (or rate) ratio with the decimals the two rows' spreads support (``gimbench.report.noise``)."""
    value = mean_ratio(cell, base, read)
    return "-" if value is None else ratio_text(value, cell, base)


def difference(cell: Cell, base: Cell, read) -> str:
    """Accuracy difference in percentage points."""
    a, b = cell.spread(read), base.spread(read)
    return "-" if a is None or b is None else f"{100 * (a.mean - b.mean):+.1f} pt"


def _mean(spread: Spread | None, fmt: str, scale: float = 1.0) -> str:
    return "-" if spread is None else format(spread.mean / scale, fmt)


def verdict_table(group: Setting) -> Table:
    """One row per method of the setting: runs, mean peak and step time, and each figure against the
    baseline (cpc where it is in the group): x for ratios, percentage points for last-module accuracy."""
    base, names = group.baseline, tasks(group)
    table = titled_table(f"{group.name}: against {base.method} (MiB, ms; x = method / {base.method}; runs: all "
                         "timed, peak and accuracy from those that measured them, see Repeats; step ms and x time: "
                         "median of the timed steps; x rate: samples/s of the unprofiled steps; IQR: of the timed "
                         "steps, as % of their median, ! where too wide to rank the row; ~: a ratio of a row too "
                         "noisy to rank)",
                         ["method", "runs", "peak", "x peak", "x floor", "step ms", "IQR", "x time", "x rate",
                          *(f"Δ {t}" for t in names)])
    for cell in group.cells:
        table.add_row(cell.method, str(len(cell.runs)), _mean(cell.spread(peak), ".1f", MIB),
                      ratio(cell, base, peak), ratio(cell, base, floor), _mean(cell.spread(step_ms), ".1f"),
                      percent(time_spread(cell)), time_ratio(cell, base), time_ratio(cell, base, rate),
                      *(difference(cell, base, accuracy(t)) for t in names))
    return table


def peak_place(cell: Cell) -> str:
    """``module 1 conv2 (backward)``: the module (and phase) holding the highest module peak of the run that
    measured the cell's memory; empty without module peaks."""
    rows = [m for m in cell.measured.doc["modules"] if (m.get("memory") or {}).get("peak_bytes")]
    if not rows:
        return ""
    top = max(rows, key=lambda m: m["memory"]["peak_bytes"])
    return f"module {top['index']} {top['name']} ({top['memory'].get('peak_phase', '?')})"


def where_peak(cell: Cell) -> str:
    """``; its peak sits at module 1 conv2 (backward)``, or nothing without module peaks."""
    place = peak_place(cell)
    return f"; its peak sits at {place}" if place else ""


def least_memory(group: Setting) -> str:
    """Which method needs least memory in the setting, by how much, at what step time, where its peak sits."""
    measured = [c for c in group.cells if c.spread(peak)]
    if not measured:
        return f"{group.name}: no step peak measured."
    base = group.baseline
    best = min(measured, key=lambda c: c.spread(peak).mean)
    mib = best.spread(peak).mean / MIB
    if len(measured) == 1:
        return f"{group.name}: only {best.method} ran; its step peak is {mib:.1f} MiB{where_peak(best)}."
    if best is base:
        others = [c for c in measured if c is not base]
        nearest = min(others, key=lambda c: c.spread(peak).mean)
        return (f"{group.name}: no method saves memory against {base.method}: it peaks at {mib:.1f} MiB, the "
                f"least; the nearest, {nearest.method}, needs {ratio(nearest, base, peak)} that and "
                f"{time_ratio(nearest, base)} the step time{where_peak(base)}.")
    saved = 1 - best.spread(peak).mean / base.spread(peak).mean if base.spread(peak) else None
    against = "" if saved is None else f", {100 * saved:.0f}% less than {base.method}"
    return (f"{group.name}: {best.method} needs least memory: {mib:.1f} MiB{against}, at "
            f"{time_ratio(best, base)} {base.method}'s step time{where_peak(best)}.")


def gim_answer(group: Setting) -> str | None:
    """The question the tool exists for: the greedy (GIM) row with the least peak against plain end-to-end cpc,
    its saving and time cost, or that it saves nothing and why (``why_more``); ``None`` without both."""
    base = group.baseline
    greedy = [c for c in group.cells if c.method.startswith("gim") and c.spread(peak)]
    if base.method != "cpc" or not greedy or not base.spread(peak):
        return None
    best = min(greedy, key=lambda c: c.spread(peak).mean)
    times, mine, theirs = ratio(best, base, peak), best.spread(peak).mean, base.spread(peak).mean
    head = f"Best GIM row, {best.method}: {times} {base.method}'s peak"
    if mine < theirs:
        return (f"{head}, saving {(theirs - mine) / MIB:.1f} MiB ({100 * (1 - mine / theirs):.0f}%) at "
                f"{time_ratio(best, base)} {base.method}'s step time.")
    return f"{head}, no saving at this size{why_more(best, base)}."


def _breakdown(cell: Cell) -> dict[str, int]:
    """What was live at the cell's step peak, by tracker category (empty where not recorded)."""
    return cell.measured.doc["step"].get("peak_breakdown_bytes") or {}


def _resident(cell: Cell, part: str) -> int:
    """Bytes the ``part`` (``encoder`` or ``head``) of every module keeps resident: parameters, gradients and
    optimizer state (of the run that measured the cell's memory)."""
    return sum((m.get("memory") or {}).get(f"{part}_{kind}_bytes") or 0 for m in cell.measured.doc["modules"]
               for kind in KINDS)


def why_more(gim: Cell, base: Cell) -> str:
    """Why the greedy row peaks higher, from the tracker's categories at both step peaks: the category that grew
    most, where it is at least half the growth, with the module and phase of the peak; and the loss heads'
    resident memory where it outweighs the encoder's. Empty where the data shows no such cause."""
    mine, theirs = _breakdown(gim), _breakdown(base)
    grown = {c: mine.get(c, 0) - theirs.get(c, 0) for c in mine}
    total = sum(v for v in grown.values() if v > 0)
    words = []
    if total > 0:
        top = max(grown, key=grown.get)
        if grown[top] >= total / 2:
            place = peak_place(gim)
            words.append(f"{top} memory is {mine[top] / MIB:.1f} MiB at its peak against {theirs.get(top, 0) / MIB:.1f}"
                         f" MiB at {base.method}'s{f', at {place}' if place else ''}")
    heads, encoder = _resident(gim, "head"), _resident(gim, "encoder")
    if heads > encoder:
        words.append(f"its per-module loss heads keep {heads / MIB:.2f} MiB resident against the encoder's "
                     f"{encoder / MIB:.2f} MiB")
    return f": {'; '.join(words)}" if words else ""


def sentence(group: Setting) -> str:
    """The setting's answer, a line each: the least memory, what GIM does against cpc, and which rows are too
    noisy to rank."""
    return "\n".join(line for line in (least_memory(group), gim_answer(group), noise_note(group.cells)) if line)


def repeats_table(found: list[Setting]) -> Table | None:
    """Where a method ran more than once in a setting (seeds, compare's rounds): mean, 95% interval (3 repeats
    up) and range; a figure fewer of its runs measured (compare's later rounds time the row only) says how many."""
    rows = [(g, c) for g in found for c in g.cells if len(c.runs) > 1]
    if not rows:
        return None
    table = titled_table("Repeats (seeds, or compare --rounds): mean ±95% interval (min-max); (n of N runs): a "
                         "figure only n of the row's runs measured",
                         ["setting", "method", "runs", "peak MiB", "step ms"])
    for group, cell in rows:
        table.add_row(group.name, cell.method, str(len(cell.runs)), _spread(cell, peak, MIB), _spread(cell, step_ms))
    return table


def _spread(cell: Cell, read, scale: float = 1.0) -> str:
    """``read``'s spread over the cell's runs, ``(1 of 2 runs)`` after it where fewer runs than the cell's have it."""
    spread = cell.spread(read)
    if spread is None:
        return "-"
    fewer = f" ({spread.n} of {len(cell.runs)} runs)" if spread.n < len(cell.runs) else ""
    return f"{spread.text('.1f', scale)}{fewer}"


def environment_table(entries: list[Entry]) -> Table:
    """Each distinct environment (torch, device, CPU threads, commit, memory backend) and the runs (their numbers
    in the table of all runs) measured in it. Threads can matter to memory too: CPU kernels' working buffers, which
    the allocator counts, can grow with them (docs/results/2026-11-30-compare.md)."""
    found: dict[tuple, list[int]] = {}
    for number, entry in enumerate(entries, 1):
        if entry.doc:
            env = entry.doc.get("environment") or {}
            key = (env.get("torch"), f"{env.get('device')} ({env.get('device_name')})", env.get("threads", "-"),
                   (env.get("git_commit") or "-")[:10], entry.doc.get("memory_backend"))
            found.setdefault(key, []).append(number)
    table = titled_table("Environment and memory backend",
                         ["runs", "torch", "device", "threads", "commit", "memory backend"])
    table.columns[0].justify = "left"
    for key, runs in found.items():
        table.add_row(module_span(runs), *map(str, key))
    return table


def verdict(entries: list[Entry]) -> list[tuple[str, Table, str]]:
    """(name, table, sentence) per setting."""
    return [(f"verdict-{i}", verdict_table(g), sentence(g)) for i, g in enumerate(groups(entries), 1)]
