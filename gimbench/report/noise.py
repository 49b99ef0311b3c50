"""How far a row's step time can be trusted: its spread, whether it is too wide to rank the row, and the
number of digits a time ratio deserves.

A row's spread is the larger of two relative widths: its runs' interquartile range of the timed steps over
their median (the middle half of the steps), and, where the row ran more than once (seeds, ``compare
--rounds``), the range of those medians over their mean. A row whose middle half spans more than ``NOISY``
of its median cannot be ranked by a time ratio: the machine's load moved under it. A ratio of two rows is
shown with the decimals its combined half-width supports (``4x``, ``3.7x``, ``1.03x``).
"""

from __future__ import annotations

import math

from gimbench.report.groups import Cell

NOISY = 0.25  # IQR over median above which a row's step time is too noisy to rank it


def _relative_iqr(doc: dict) -> float | None:
    step = doc["step"]
    ms, iqr = step.get("time_ms"), step.get("time_ms_iqr")
    return None if not ms or iqr is None else iqr / ms


def iqr_text(doc: dict) -> str:
    """A run's step-time IQR in ms, ``!`` after it where it is too wide (``NOISY``) to rank the run."""
    iqr, width = doc["step"].get("time_ms_iqr"), _relative_iqr(doc)
    return "-" if iqr is None else f"{iqr:.1f}{'!' if width is not None and width > NOISY else ''}"


def time_spread(cell: Cell) -> float | None:
    """The row's relative step-time spread (see the module docstring); ``None`` without a step time."""
    widths = [w for w in (_relative_iqr(e.doc) for e in cell.runs) if w is not None]
    if not widths:
        return None
    medians = cell.spread(lambda d: d["step"].get("time_ms"))
    between = (medians.high - medians.low) / medians.mean if medians and medians.mean else 0.0
    return max(max(widths), between)


def noisy(cell: Cell) -> bool:
    """Whether the row's step time spreads too widely to rank it against another."""
    spread = time_spread(cell)
    return spread is not None and spread > NOISY


def ratio_decimals(value: float, cell: Cell, base: Cell) -> int:
    """The decimals (two at most) that ``value``, a time or rate ratio of ``cell`` to ``base``, deserves: its
    uncertainty is the two rows' half-spreads combined in quadrature."""
    halves = [(time_spread(c) or 0.0) / 2 for c in (cell, base)]
    error = value * math.hypot(*halves)
    return 2 if error <= 0 else max(0, min(2, math.ceil(-math.log10(error))))


def ratio_text(value: float, cell: Cell, base: Cell) -> str:
    """``value`` (a time or rate ratio of ``cell`` to ``base``) with the decimals the two rows' spreads
    support, ``~`` before it where either row is too noisy to rank."""
    mark = "~" if noisy(cell) or noisy(base) else ""
    return f"{mark}{value:.{ratio_decimals(value, cell, base)}f}x"


def percent(spread: float | None) -> str:
    """A relative spread as a percentage, ``!`` after it where it is too wide to rank the row."""
    return "-" if spread is None else f"{100 * spread:.0f}%{'!' if spread > NOISY else ''}"


def noise_note(cells: list[Cell]) -> str | None:
    """One sentence naming the rows too noisy to rank, or ``None`` where every row's spread is narrow."""
    loud = [c for c in cells if noisy(c)]
    if not loud:
        return None
    names = ", ".join(f"{c.method} ({percent(time_spread(c))[:-1]})" for c in loud)
    return (f"Too noisy to rank by time: {names}: their step times spread (IQR, or range over repeats) more "
            f"than {100 * NOISY:.0f}% of the median; time ratios touching them are marked ~ and rounded to "
            "what the spread supports. Rerun on a quiet machine, or with more rounds (gimbench compare --rounds N).")
