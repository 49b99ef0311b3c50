"""Memory over one step as a picture: allocated MiB against time, the peak marked, the resident level dashed,
and beneath it one row per module with its phases (forward, loss, backward, optimizer) as coloured spans.

A run folder gets its own (``memory-timeline.png``, ms on the time axis); a report draws every method of a
setting side by side, each step's time as a fraction of it (its ms in the panel's title) and one MiB scale
for all, so the shapes compare: end-to-end training climbs through every forward and falls in one backward,
greedy training climbs and falls once per module.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.patches import Patch

from gimbench.report.collect import Entry
from gimbench.report.groups import Setting
from gimbench.report.plots import MIB, colour, plt, png
from gimbench.results.timeline import read_series

PHASES = {"forward": ("tab:blue", "fwd"), "loss": ("tab:purple", "loss"), "backward": ("tab:red", "bwd"),
          "optimizer": ("tab:green", "opt")}
COLUMNS = 3  # panels per row in a report


@dataclass
class Panel:
    """One run's step: its results.json block and series (ms, bytes), and how to title and colour it."""

    title: str
    colour: str
    block: dict
    times_ms: list[float]
    levels: list[int]


def panel(entry: Entry, title: str) -> Panel | None:
    """``entry``'s timeline, titled ``title`` and the step's ms; ``None`` where its run recorded none or its CSV
    is missing."""
    block = (entry.doc or {}).get("memory_timeline")
    series = read_series(entry.folder, block) if block else None
    if series is None:
        return None
    return Panel(f"{title} ({block['duration_ms']:.0f} ms step)", colour(entry.strategy), block, *series)


def _memory(ax, p: Panel, scale: float, width: float) -> None:
    """The level as a step curve, the resident level dashed and the peak marked with its value."""
    x = [t / scale for t in p.times_ms]
    y = [b / MIB for b in p.levels]
    ax.step(x, y, where="post", color=p.colour, linewidth=1)
    ax.fill_between(x, y, step="post", color=p.colour, alpha=0.15)
    resident = p.block["resident_bytes"] / MIB
    ax.axhline(resident, color="gray", linestyle="--", linewidth=1)
    ax.annotate(f"resident {resident:.1f} MiB", (0.01, resident), xycoords=("axes fraction", "data"),
                va="bottom", fontsize=7, color="dimgray")
    peak, at = p.block["peak_bytes"] / MIB, p.block["peak_ms"] / scale
    ax.plot([at], [peak], marker="v", color="black", markersize=6)
    late = at > 0.6 * width  # the value's text goes on the side with room
    ax.annotate(f"peak {peak:.1f} MiB", (at, peak), xytext=(-4 if late else 4, 2), textcoords="offset points",
                ha="right" if late else "left", fontsize=8)
    ax.set_title(p.title, fontsize=9, color=p.colour)
    ax.grid(alpha=0.3)


def _spans(ax, p: Panel, scale: float, width: float) -> None:
    """One row per module, its phases as bars; a bar wide enough carries its phase's short name."""
    rows = {s["module"]: s["name"] for s in p.block["spans"]}
    for s in p.block["spans"]:
        shade, short = PHASES.get(s["phase"], ("gray", s["phase"]))
        left, length = s["start_ms"] / scale, (s["end_ms"] - s["start_ms"]) / scale
        ax.barh(s["module"], length, left=left, height=0.8, color=shade)
        if length > 0.06 * width:
            ax.text(left + length / 2, s["module"], short, ha="center", va="center", fontsize=6, color="white")
    ax.set_yticks(sorted(rows), [f"{k} {rows[k]}" for k in sorted(rows)], fontsize=7)
    ax.set_ylim(max(rows, default=0) + 0.6, -0.6)
    ax.grid(axis="x", alpha=0.3)


def figure(panels: list[Panel], title: str, *, normalised: bool) -> bytes:
    """The panels side by side (``COLUMNS`` a row) on one MiB scale; time in ms, or as a fraction of each step."""
    columns = min(COLUMNS, len(panels))
    rows = -(-len(panels) // columns)
    bars = 0.25 * max(len({s["module"] for s in p.block["spans"]}) for p in panels) + 0.3  # inches of module rows
    wide = 4.6 * columns + 0.6 if len(panels) > 1 else 8.0  # a run's own picture gets the width of two panels
    fig = plt.figure(figsize=(wide, rows * (3 + bars) + 0.9), layout="constrained")
    grid = fig.add_gridspec(rows, columns)
    top = max(max(p.levels) for p in panels) / MIB * 1.12
    for i, p in enumerate(panels):
        cell = grid[i // columns, i % columns].subgridspec(2, 1, height_ratios=[3, bars], hspace=0.02)
        memory = fig.add_subplot(cell[0])
        spans = fig.add_subplot(cell[1], sharex=memory)
        scale = (p.block["duration_ms"] or 1.0) if normalised else 1.0
        width = 1.0 if normalised else p.block["duration_ms"]
        _memory(memory, p, scale, width)
        _spans(spans, p, scale, width)
        memory.set(xlim=(0, width), ylim=(0, top))
        memory.tick_params(labelbottom=False)  # the bars beneath carry the time axis
        memory.set_ylabel("MiB allocated", fontsize=8)
        spans.set_xlabel("fraction of the step" if normalised else "ms from the step's start", fontsize=8)
    fig.legend([Patch(color=c) for c, _ in PHASES.values()], list(PHASES), loc="outside lower center", ncols=4,
               fontsize=8)
    fig.suptitle(title, fontsize=10)
    return png(fig)


def run_picture(entry: Entry) -> bytes | None:
    """A run folder's ``memory-timeline.png`` (its CSV written first); ``None`` without a timeline."""
    c = entry.config
    found = panel(entry, f"{entry.strategy}, {c['modality']} {c['preset']}, depth {c['depth']}, "
                         f"batch {c['batch_size']}, {c['device']}")
    if found is None:
        return None
    return figure([found], f"Memory over one step ({found.block['source']})", normalised=False)


def compare(group: Setting) -> bytes | None:
    """Every method of ``group`` (the run that measured its memory) side by side; ``None`` when no run has a
    timeline."""
    panels = [panel(c.measured, c.method) for c in group.cells]
    panels = [p for p in panels if p is not None]
    if not panels:
        return None
    return figure(panels, f"{group.name}: memory over one step, each step's time as a fraction of it, one MiB "
                          "scale", normalised=True)
