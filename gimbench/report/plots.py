"""The report's plots (matplotlib, Agg backend), returned as PNG bytes."""

from __future__ import annotations

import io
import zlib
from functools import partial

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from gimbench.profiling.tracker import CATEGORIES  # noqa: E402
from gimbench.report.collect import Entry  # noqa: E402
from gimbench.report.groups import Setting, Spread, series  # noqa: E402
from gimbench.report.noise import time_spread  # noqa: E402

MIB = 2**20


def png(figure) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


# One colour per method in every plot of every report (matplotlib's tab10); others get a stable one of tab20.
COLOURS = {"cpc": "tab:blue", "gim per-module": "tab:orange", "gim summed": "tab:green",
           "gim sequential": "tab:red", "gim module-parallel": "tab:purple", "supervised": "tab:brown",
           "greedy-supervised": "tab:pink", "random": "tab:gray", "mfcc": "tab:olive"}


def colour(method: str) -> str:
    """The method's colour; a pipelined cpc or module-parallel GIM keeps its family's."""
    for name in sorted(COLOURS, key=len, reverse=True):
        if method == name or method.startswith(f"{name} "):
            return COLOURS[name]
    return plt.get_cmap("tab20")(zlib.crc32(method.encode()) % 20)


def _depth_axes(title: str, ylabel: str, depths: list[int]):
    """Axes over depth with ticks at the measured depths only, y from zero."""
    figure, ax = plt.subplots(figsize=(7, 4.2))
    ax.set(title=title, xlabel="depth (gradient-isolated modules)", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.set_xticks(sorted(set(depths)))
    return figure, ax


def _setting(entries: list[Entry], *, memory: bool) -> str:
    """What every completed run shares (modality, preset, batch), and the memory method or the device."""
    done = [e for e in entries if e.doc]
    values = {k: {str(e.config[k]) for e in done} for k in ("modality", "preset", "batch_size")}
    shared = [f"{k.replace('_', ' ')} {v.pop()}" for k, v in values.items() if len(v) == 1]
    how = sorted({f"{e.doc['memory_backend'] + ' on ' if memory else 'wall clock on '}{e.doc['environment']['device']}"
                  for e in done})
    return ", ".join([*shared, *how])


def _legend(ax) -> None:
    """A legend beside the axes; none where nothing is labelled (matplotlib would warn on stderr)."""
    if not ax.get_legend_handles_labels()[0]:
        return
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))


def _points(points: dict[int, list[Entry]], read) -> tuple[list[int], list[float], list[list[float]]]:
    """x, the mean of ``read`` over each point's repeats, and the distance to their min and max (error bars)."""
    xs, means, low, high = [], [], [], []
    for x, runs in points.items():
        spread = Spread.of([read(e.doc) for e in runs])
        if spread is not None:
            xs.append(x)
            means.append(spread.mean)
            low.append(spread.mean - spread.low)
            high.append(spread.high - spread.mean)
    return xs, means, [low, high]


def _over_depth(entries: list[Entry], title: str, ylabel: str, lines: list[tuple[str, object, str]]) -> bytes:
    """One line per series and per (suffix, read, style); repeats as mean with min-max bars; y from zero."""
    found = series(entries, "depth")
    depths = [d for points in found.values() for d in points]
    figure, ax = _depth_axes(title, ylabel, depths)
    for key, points in found.items():
        method = next(iter(points.values()))[0].strategy
        for suffix, read, style in lines:
            xs, ys, bars = _points(points, read)
            if xs:
                ax.errorbar(xs, ys, yerr=bars, marker="o" if style == "-" else "x", linestyle=style, capsize=3,
                            color=colour(method), label=f"{key}{suffix}")
    ax.set_ylim(bottom=0)
    _legend(ax)
    return png(figure)


def memory_vs_depth(entries: list[Entry]) -> bytes:
    """Step peak memory against depth, one line per method and setting (runs differing only in step count
    share a line), its greedy floor dashed in the same colour; repeats as mean with min-max bars."""
    return _over_depth(entries, f"Step peak memory vs depth, min-max over seeds\n({_setting(entries, memory=True)})",
                       "MiB", [(" peak", lambda d: _in_mib(d["step"].get("peak_memory_bytes")), "-"),
                               (" floor", lambda d: _in_mib(d["step"].get("floor_bytes")), "--")])


def time_vs_depth(entries: list[Entry]) -> bytes:
    """Median step time (timed steps) against depth, one line per method and setting; repeats as mean with
    min-max bars."""
    return _over_depth(entries, f"Step time vs depth, median of timed steps, min-max over seeds\n"
                                f"({_setting(entries, memory=False)})", "ms",
                       [("", lambda d: d["step"].get("time_ms"), "-")])


def depths(entries: list[Entry]) -> set:
    """The depths the completed runs were measured at: plots over depth need two."""
    return {e.config.get("depth") for e in entries if e.doc}


def memory_vs_time(group: Setting) -> bytes | None:
    """The trade-off of one setting: each method's step peak against its median step time, labelled, the time's
    spread as a bar (the IQR of the timed steps, or the range of the repeats' medians where wider) and the
    peak's range over repeats; ``None`` where no method has both figures."""
    points = [(c, c.spread(lambda d: _in_mib(d["step"].get("peak_memory_bytes"))),
               c.spread(lambda d: d["step"].get("time_ms"))) for c in group.cells]
    points = [(c, mem, ms) for c, mem, ms in points if mem and ms]
    if not points:
        return None
    figure, ax = plt.subplots(figsize=(7, 4.2))
    for i, (cell, mem, ms) in enumerate(points):
        half = max(ms.mean * (time_spread(cell) or 0.0) / 2, (ms.high - ms.low) / 2)
        ax.errorbar(ms.mean, mem.mean, xerr=half, yerr=[[mem.mean - mem.low], [mem.high - mem.mean]], marker="o",
                    capsize=3, color=colour(cell.method))
        # labels alternate above and below their point, so neighbours at one peak do not overprint
        ax.annotate(cell.method, (ms.mean, mem.mean), textcoords="offset points", xytext=(5, 6 if i % 2 else -12),
                    fontsize=8, color=colour(cell.method))
    ax.set(title=f"{group.name}: step peak memory vs step time (bars: time IQR, peak range over repeats)",
           xlabel="median step time of the timed steps (ms)", ylabel="step peak memory (MiB)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return png(figure)


def _in_mib(value: int | None) -> float | None:
    return None if value is None else value / MIB


def module_bars(group: Setting) -> bytes | None:
    """Per module, what was live at its peak, stacked by category: every method of the setting side by side
    on one shared MiB scale (the run that measured each one's memory); ``None`` without memory rows."""
    cells = [c for c in group.cells if any(m.get("memory") for m in c.measured.doc["modules"])]
    if not cells:
        return None
    figure, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells) + 1.5, 3.6), sharey=True, squeeze=False)
    for ax, cell in zip(axes[0], cells, strict=True):
        modules = [m for m in cell.measured.doc["modules"] if m.get("memory")]
        names = [f"{m['index']} {m['name']}" for m in modules]
        bottom = [0.0] * len(modules)
        for shade, category in enumerate(CATEGORIES):
            heights = [m["memory"].get(f"{category}_bytes", 0) / MIB for m in modules]
            ax.bar(names, heights, bottom=bottom, label=category, color=plt.get_cmap("Set2")(shade))
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.set_title(cell.method, color=colour(cell.method), fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("MiB live at the module's peak")
    figure.suptitle(f"{group.name}: live memory at each module's peak, one scale", fontsize=10)
    _legend(axes[0][-1])
    return png(figure)


def _utilisation(doc: dict, at: int | None) -> float | None:
    """Percent of the reference rate achieved by module ``at``, or by the whole step (``None``)."""
    modules = doc["modules"]
    row = doc["step"] if at is None else modules[at] if at < len(modules) else {}
    fraction = row.get("flops_fraction")
    return None if fraction is None else 100 * fraction


def utilisation_bars(group: Setting) -> bytes | None:
    """Per module and for the whole step, the share of the device's reference FLOP/s its forward, loss and
    backward achieved: the setting's methods side by side, mean over repeats with min-max bars; ``None``
    where no run counted FLOPs."""
    cells = [c for c in group.cells if c.spread(partial(_utilisation, at=None)) is not None]
    if not cells:
        return None
    names = [*max(([f"{m['index']} {m['name']}" for m in c.runs[0].doc["modules"]] for c in cells), key=len), "step"]
    slots = [*range(len(names) - 1), None]  # each module, then the step
    width = 0.8 / len(cells)
    figure, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(names) * len(cells) + 2), 3.8))
    for i, cell in enumerate(cells):
        offset = (i - (len(cells) - 1) / 2) * width
        bars = [(x + offset, s) for x, slot in enumerate(slots) if (s := cell.spread(partial(_utilisation, at=slot)))]
        ax.bar([x for x, _ in bars], [s.mean for _, s in bars], width, color=colour(cell.method), label=cell.method,
               yerr=[[s.mean - s.low for _, s in bars], [s.high - s.mean for _, s in bars]], capsize=2)
    ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
    ax.set_title(f"{group.name}: achieved FLOP/s (forward, loss, backward) as a share of the device's matmul rate",
                 fontsize=10)
    ax.set_ylabel("% of reference FLOP/s")
    ax.grid(axis="y", alpha=0.3)
    _legend(ax)
    return png(figure)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (memory, accuracy) points no other point beats on both (less or equal memory, higher accuracy)."""
    front, best = [], float("-inf")
    for mem, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((mem, acc))
            best = acc
    return front


def accuracy_vs_memory(entries: list[Entry]) -> bytes | None:
    """Last-module probe accuracy (first task) against step peak memory per run, Pareto front drawn; runs
    without probes as ticks on the memory axis; ``None`` without a step peak or without any probe."""
    done = [e for e in entries if e.doc and e.doc["step"].get("peak_memory_bytes")]
    if not any(e.doc.get("probe") for e in done):
        return None
    task = next((t for e in done for t in e.doc.get("probe") or {}), None)
    figure, ax = plt.subplots(figsize=(7, 4.2))
    probed = []
    for e in done:
        mem, probe = e.doc["step"]["peak_memory_bytes"] / MIB, (e.doc.get("probe") or {}).get(task)
        if probe:
            probed.append((mem, 100 * probe["per_module"][-1]))
            ax.scatter(mem, probed[-1][1], color=colour(e.strategy), label=e.strategy, zorder=3)
        else:
            ax.plot(mem, 0, marker="|", markersize=14, color=colour(e.strategy), label=f"{e.strategy} (no probe)")
    if probed:
        front = pareto(probed)
        ax.step([m for m, _ in front], [a for _, a in front], where="post", color="black", alpha=0.5,
                linestyle=":", label="Pareto front")
    ax.set(title=f"Probe accuracy ({task}, last module) vs step peak memory",
           xlabel="step peak memory (MiB)", ylabel="test accuracy %")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return png(figure)


def probe_accuracy(entry: Entry, label: str) -> bytes | None:
    """Test accuracy of each probe task per module, chance dashed; ``None`` without probes."""
    probe = entry.doc.get("probe") or {}
    if not probe:
        return None
    figure, ax = plt.subplots(figsize=(7, 3.6))
    for task, p in probe.items():
        modules = range(len(p["per_module"]))
        (line,) = ax.plot(modules, [100 * a for a in p["per_module"]], marker="o", label=task)
        ax.axhline(100 * p["chance"], linestyle="--", color=line.get_color(), label=f"{task} chance")
    ax.set(title=f"{label}: linear probe accuracy per module", xlabel="module", ylabel="test accuracy %")
    ax.set_xticks(range(len(entry.doc["modules"])), [f"{m['index']} {m['name']}" for m in entry.doc["modules"]])
    ax.grid(alpha=0.3)
    _legend(ax)
    return png(figure)


def _rank_parts(row: dict) -> dict[str, float] | None:
    """A rank's median step in ms split into the timeline's parts (``None`` without a step time)."""
    ms, idle = (row.get("step") or {}).get("time_ms"), row.get("idle_fraction")
    if not ms:
        return None
    if idle is None:
        return {"not split": ms}
    transfer, wait, comm = row.get("transfer_fraction"), row.get("wait_fraction"), row.get("comm_fraction")
    parts = {"compute": ms * (1 - idle)}
    if transfer is not None and wait is not None:
        parts |= {"transfer": ms * transfer, "wait": ms * wait}
        comm = transfer + wait
    elif comm is not None:
        parts["in sends and receives"] = ms * comm
    parts["other"] = ms * max(0.0, idle - (comm or 0.0))
    return parts


TIMELINE = {"compute": ("tab:blue", "compute"),
            "transfer": ("tab:orange", "transfer (estimated: messages x one-way ping)"),
            "wait": ("tab:gray", "waiting on peers (rest of the time in sends and receives)"),
            "in sends and receives": ("tab:gray", "in sends and receives (transfer and waiting, not split)"),
            "other": ("lightgray", "other (neither computing nor in sends and receives)"),
            "not split": ("white", "step not split (not measured in this mode)")}


def rank_timeline(entries: list[Entry], labels: list[str]) -> bytes | None:
    """Per rank of every distributed run, its median step split into compute, transfer (estimated from the
    ping), waiting on peers in sends and receives, and the rest; ``None`` without a distributed run."""
    rows = [(f"{label} · rank {r['rank']}", _rank_parts(r))
            for e, label in zip(entries, labels, strict=True) if e.doc and e.doc.get("distributed")
            for r in e.doc["distributed"]["ranks"]]
    rows = [(name, parts) for name, parts in rows if parts]
    if not rows:
        return None
    figure, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
    names = [name for name, _ in rows]
    left = [0.0] * len(rows)
    for part, (shade, caption) in TIMELINE.items():
        widths = [parts.get(part, 0.0) for _, parts in rows]
        if any(parts.get(part) is not None for _, parts in rows):
            ax.barh(names, widths, left=left, color=shade, edgecolor="black" if part == "not split" else None,
                    hatch="//" if part == "not split" else None, label=caption)
            left = [a + w for a, w in zip(left, widths, strict=True)]
    ax.set(title="Per-rank step: compute, transfer and waiting", xlabel="ms (median step, split by the shares of "
           "the measured steps)")
    ax.invert_yaxis()
    _legend(ax)
    return png(figure)
