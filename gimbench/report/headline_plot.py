"""The README's headline figure (matplotlib, Agg): per setting, each row's step peak and step time against cpc,
probe accuracy beside them where probes ran; settings that differ only in batch size as lines over the batch.

The file carries no date or version (PNG ``Software``, SVG ``Date``, random SVG ids), so drawing it again from the
same results gives the same bytes and a regenerated figure does not churn git.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from gimbench.config import ConfigError  # noqa: E402
from gimbench.report.groups import Cell, Setting  # noqa: E402
from gimbench.report.headline import MIB, Headline, by_batch, iqr, ratio_text, row  # noqa: E402
from gimbench.report.verdict import accuracy, mean_ratio, peak, step_ms, tasks  # noqa: E402
from gimbench.results.atomic import write_atomic  # noqa: E402

FORMATS = {".png": {"Software": None}, ".svg": {"Date": None, "Creator": None}}
PANEL = (4.6, 0.32)  # inches: a panel's width, and its height per row of bars


def colours(found: list[Setting]) -> dict[str, str]:
    """One colour per row label, the same in every panel (matplotlib's cycle, in order of first appearance)."""
    labels = dict.fromkeys(c.method for s in found for c in s.cells)
    return {label: f"C{i % 10}" for i, label in enumerate(labels)}


def _bars(ax, setting: Setting, values: list[float | None], texts: list[str], colour: dict,
          whiskers: list[float] | None = None) -> None:
    """Horizontal bars, one per row of ``setting`` (the first on top), each with its text past its end (and past
    its whisker, a half width either side, where it has one)."""
    ys = range(len(setting.cells))
    heights = [v or 0 for v in values]
    whiskers = whiskers or [0.0] * len(heights)
    ax.barh(ys, heights, color=[colour[c.method] for c in setting.cells])
    if any(whiskers):
        ax.errorbar(heights, ys, xerr=whiskers, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    for y, h, w, text in zip(ys, heights, whiskers, texts, strict=True):
        ax.annotate(text, (h + w, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(list(ys), [c.method for c in setting.cells], fontsize=8)
    ax.invert_yaxis()
    ax.margins(x=0.2)
    ax.grid(axis="x", alpha=0.3)


def peak_panel(ax, setting: Setting, colour: dict) -> None:
    base = setting.baseline
    values = [mean_ratio(c, base, peak) for c in setting.cells]
    _bars(ax, setting, values, [ratio_text(v) for v in values], colour)
    ax.axvline(1, color="black", linestyle="--", linewidth=0.8)
    mib = f" ({base.spread(peak).mean / MIB:.1f} MiB)" if base.spread(peak) else ""
    ax.set_title(f"{setting.name}\nstep peak, x {base.method}{mib}", fontsize=9)


def time_panel(ax, setting: Setting, colour: dict) -> None:
    """Median step time over the baseline's; the bar's whisker spans the row's IQR (over the same median)."""
    base = setting.baseline
    values = [mean_ratio(c, base, step_ms) for c in setting.cells]
    texts = [ratio_text(v, c, base) for c, v in zip(setting.cells, values, strict=True)]
    whiskers = [_whisker(c, base) if v else 0.0 for c, v in zip(setting.cells, values, strict=True)]
    _bars(ax, setting, values, texts, colour, whiskers)
    ax.axvline(1, color="black", linestyle="--", linewidth=0.8)
    ms = base.spread(step_ms)
    ax.set_title(f"step time, x {base.method} ({ms.mean:.1f} ms); whisker: IQR" if ms else "step time", fontsize=9)
    ax.tick_params(axis="y", labelleft=False)


def accuracy_panel(ax, setting: Setting, source: Setting) -> None:
    """Last-module probe accuracy of ``setting``'s rows as ``source`` measured them, per task side by side in
    shades of grey (the colours belong to the rows), each task's chance dashed."""
    names, rows = tasks(source), [row(source, c.method) for c in setting.cells]
    width = 0.8 / len(names)
    for i, task in enumerate(names):
        spreads = [c.spread(accuracy(task)) if c else None for c in rows]
        ys = [y - 0.4 + width * (i + 0.5) for y in range(len(rows))]
        grey = str(0.3 + 0.4 * i / max(1, len(names) - 1))
        bars = ax.barh(ys, [100 * s.mean if s else 0 for s in spreads], height=width, label=task, color=grey)
        ax.bar_label(bars, [f"{task} {100 * s.mean:.1f}" if s else "" for s in spreads], padding=2, fontsize=7)
        ax.axvline(100 * _chance(source, task), color=grey, linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [c.method for c in setting.cells], fontsize=8)
    ax.tick_params(axis="y", labelleft=False)
    ax.invert_yaxis()
    ax.margins(x=0.3)
    where = "" if source is setting else f"\n{source.name}"
    ax.set_title(f"probe accuracy %, last module (dashed: chance){where}", fontsize=9)


def _chance(setting: Setting, task: str) -> float:
    return next(e.doc["probe"][task]["chance"] for c in setting.cells for e in c.runs
                if task in (e.doc.get("probe") or {}))


def _whisker(cell: Cell, base: Cell) -> float:
    """Half the row's IQR over the baseline's median step time: the whisker of a time ratio."""
    q, ms = cell.spread(iqr), base.spread(step_ms)
    return q.mean / 2 / ms.mean if q and ms and ms.mean else 0.0


def _over_batch(ax, group: list[Setting], colour: dict, read, ylabel: str, whisker=None) -> None:
    """One line per row label over the batch sizes of ``group``; ``read(cell, baseline)`` gives a point and
    ``whisker(cell, baseline)`` its error bar."""
    lines: dict[str, list[tuple[int, float, float]]] = {}
    for s in group:
        for c in s.cells:
            value = read(c, s.baseline)
            if value is not None:
                bar = whisker(c, s.baseline) if whisker else 0.0
                lines.setdefault(c.method, []).append((s.baseline.runs[0].config["batch_size"], value, bar))
    for label, points in lines.items():
        xs, ys, bars = zip(*points, strict=True)
        ax.errorbar(xs, ys, yerr=bars if whisker else None, marker="o", capsize=2, color=colour[label], label=label)
    ax.set_xticks(sorted({p[0] for points in lines.values() for p in points}))
    ax.set(xlabel="batch size", ylabel=ylabel, ylim=(0, None))
    ax.grid(alpha=0.3)


def batch_panels(axes, group: list[Setting], colour: dict) -> None:
    """Peak (MiB) and step time over the baseline's (whiskers: the row's IQR), against the batch size."""
    name, base = group[0].name.rsplit(" b", 1)[0], group[0].baseline.method
    _over_batch(axes[0], group, colour, lambda c, b: c.spread(peak) and c.spread(peak).mean / MIB, "step peak MiB")
    _over_batch(axes[1], group, colour, lambda c, b: mean_ratio(c, b, step_ms), f"step time, x {base}", _whisker)
    axes[0].set_title(f"{name}: step peak against batch size", fontsize=9)
    axes[1].set_title(f"{name}: step time against batch size; whisker: IQR", fontsize=9)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))


def panels(headline: Headline, group: list[Setting]) -> int:
    """How many panels a group draws: peak and time, and accuracy for one setting with an accuracy source."""
    return 2 if len(group) > 1 or headline.accuracy_of(group[0]) is None else 3


def figure(headline: Headline):
    """The headline figure: a line of panels per group of settings (``by_batch``); no panel without data."""
    groups, colour = by_batch(headline.found), colours(headline.found)
    heights = [2.2 if len(g) > 1 else 0.9 + PANEL[1] * len(g[0].cells) for g in groups]
    ncols = max(panels(headline, g) for g in groups)
    fig = plt.figure(figsize=(PANEL[0] * ncols, sum(heights) + 0.4 * len(groups)), layout="constrained")
    grid = fig.add_gridspec(len(groups), ncols, height_ratios=heights)
    for line, group in enumerate(groups):
        axes = [fig.add_subplot(grid[line, col]) for col in range(panels(headline, group))]
        if len(group) > 1:
            batch_panels(axes, group, colour)
            continue
        peak_panel(axes[0], group[0], colour)
        time_panel(axes[1], group[0], colour)
        if len(axes) > 2:
            accuracy_panel(axes[2], group[0], headline.accuracy_of(group[0]))
    return fig


def save(fig, path: Path) -> None:
    """Write the figure as PNG or SVG (by ``path``'s suffix) without a date or version in it; the figure is closed."""
    metadata = FORMATS.get(path.suffix.lower())
    if metadata is None:
        raise ConfigError(f"--out {path}: give a .png or .svg file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {path}: cannot make its folder ({e.strerror})") from None
    with plt.rc_context({"svg.hashsalt": "gimbench-headline"}):
        write_atomic(path, lambda f: fig.savefig(f, format=path.suffix[1:].lower(), dpi=110, metadata=metadata))
    plt.close(fig)
