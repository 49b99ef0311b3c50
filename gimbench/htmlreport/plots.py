"""The report's plots (matplotlib, Agg backend), returned as PNG bytes."""

from __future__ import annotations

import io
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from gimbench.htmlreport.collect import Entry, series_key  # noqa: E402
from gimbench.profiling.tracker import CATEGORIES  # noqa: E402

MIB = 2**20


def png(figure) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _series(entries: list[Entry]) -> dict[str, list[Entry]]:
    """Completed runs grouped into lines over depth, each sorted by depth."""
    done = [e for e in entries if e.doc]
    groups = defaultdict(list)
    for e in done:
        groups[series_key(e, done)].append(e)
    return {k: sorted(v, key=lambda e: e.config["depth"]) for k, v in groups.items()}


def _depth_axes(title: str, ylabel: str):
    figure, ax = plt.subplots(figsize=(7, 4.2))
    ax.set(title=title, xlabel="depth (gradient-isolated modules)", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))


def memory_vs_depth(entries: list[Entry]) -> bytes:
    """Step peak memory against depth, one line per strategy, its greedy floor dashed in the same colour."""
    figure, ax = _depth_axes(f"Step peak memory vs depth\n({_setting(entries, memory=True)})", "MiB")
    for key, runs in _series(entries).items():
        depths = [e.config["depth"] for e in runs]
        peak = [e.doc["step"].get("peak_memory_bytes") or float("nan") for e in runs]
        floor = [e.doc["step"].get("floor_bytes") or float("nan") for e in runs]
        (line,) = ax.plot(depths, [p / MIB for p in peak], marker="o", label=f"{key} peak")
        ax.plot(depths, [f / MIB for f in floor], linestyle="--", marker="x", color=line.get_color(),
                label=f"{key} floor")
    _legend(ax)
    return png(figure)


def time_vs_depth(entries: list[Entry]) -> bytes:
    """Median step time (timed steps) against depth, IQR as error bars, one line per strategy."""
    setting = _setting(entries, memory=False)
    figure, ax = _depth_axes(f"Step time vs depth, median of timed steps, IQR bars\n({setting})", "ms")
    for key, runs in _series(entries).items():
        ax.errorbar([e.config["depth"] for e in runs], [e.doc["step"]["time_ms"] or float("nan") for e in runs],
                    yerr=[e.doc["step"].get("time_ms_iqr") or 0 for e in runs], marker="o", capsize=3, label=key)
    _legend(ax)
    return png(figure)


def memory_breakdown(entry: Entry, label: str) -> bytes | None:
    """Per module, what was live at its peak, stacked by category (MiB); ``None`` without memory rows."""
    modules = [m for m in entry.doc["modules"] if m.get("memory")]
    if not modules:
        return None
    figure, ax = plt.subplots(figsize=(7, 3.6))
    names = [f"{m['index']} {m['name']}" for m in modules]
    bottom = [0.0] * len(modules)
    for category in CATEGORIES:
        heights = [m["memory"].get(f"{category}_bytes", 0) / MIB for m in modules]
        ax.bar(names, heights, bottom=bottom, label=category)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set(title=f"{label}: live memory at each module's peak", ylabel="MiB")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    _legend(ax)
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
