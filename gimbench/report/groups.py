"""Runs grouped for comparison: a *setting* is everything but the method; repeats differ only in seed.

A report compares methods within a setting (same modality, preset, batch, steps, depth, device, data,
processes) and combines the repeats of one method in one setting (runs that differ only in ``--seed``)
into a mean with its spread: min-max, and a 95% interval from three repeats up.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from gimbench.report.collect import Entry, setting_value

# What a setting is made of; the method (strategy, its context network) and the seed are not in it.
SETTING = ("modality", "preset", "batch_size", "steps", "lr", "device", "data", "nproc", "depth")
# Two-sided 97.5% quantiles of Student's t by degrees of freedom (n - 1); 1.96 beyond the table.
T975 = {2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228, 15: 2.131,
        20: 2.086, 30: 2.042}


def setting_key(entry: Entry, keys: tuple[str, ...] = SETTING) -> tuple:
    """The values that make up ``entry``'s setting, in ``SETTING`` order (or ``keys``)."""
    return tuple(setting_value(entry.config, k) for k in keys)


def setting_name(entry: Entry, entries: list[Entry], keys: tuple[str, ...] = SETTING) -> str:
    """The setting as words, naming only what differs between ``entries`` (depth always)."""
    shown = [k for k in keys if k == "depth" or len({setting_value(e.config, k) for e in entries}) > 1]
    return ", ".join(f"{k.replace('_', ' ')} {entry.config.get(k)}" for k in shown) or "one setting"


@dataclass
class Spread:
    """The mean of repeated measurements, their range and (from three up) a 95% interval of the mean."""

    mean: float
    low: float
    high: float
    n: int
    half_width: float | None  # of the 95% interval; None under three values

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        """``None`` when no value is at hand."""
        values = [v for v in values if v is not None]
        if not values:
            return None
        n = len(values)
        half = None
        if n >= 3:
            t = T975.get(n - 1) or next((v for k, v in sorted(T975.items()) if k >= n - 1), 1.96)
            half = t * statistics.stdev(values) / n**0.5
        return cls(statistics.fmean(values), min(values), max(values), n, half)

    def text(self, fmt: str = ".1f", scale: float = 1.0) -> str:
        """``12.6``, ``12.6 (12.5-12.7)``, or with three values up ``12.6 ±0.1 (12.5-12.7)``."""
        mean = format(self.mean / scale, fmt)
        if self.n == 1:
            return mean
        ci = "" if self.half_width is None else f" ±{format(self.half_width / scale, fmt)}"
        return f"{mean}{ci} ({format(self.low / scale, fmt)}-{format(self.high / scale, fmt)})"


@dataclass
class Cell:
    """The repeats of one method in one setting."""

    method: str
    runs: list[Entry]

    def spread(self, read: Callable[[dict], float | None]) -> Spread | None:
        """``read`` (of a results.json document) over the repeats that measured it (a missing value is left out,
        never averaged in)."""
        return Spread.of([read(e.doc) for e in self.runs])

    @property
    def measured(self) -> Entry:
        """The first run that measured the step's memory, whose peak breakdown, module memory and timeline stand
        for the row: a comparison's later rounds only time it (``--memory-steps 0``, gimbench.sweep.compare)."""
        return next((e for e in self.runs if e.doc["step"].get("peak_memory_bytes") is not None), self.runs[0])


@dataclass
class Setting:
    """One setting and its methods, ``cpc`` (the baseline) first where it is there."""

    name: str
    cells: list[Cell]

    @property
    def baseline(self) -> Cell:
        return self.cells[0]


def groups(entries: list[Entry]) -> list[Setting]:
    """Completed runs by setting (in order of first appearance), each setting's runs by method."""
    done = [e for e in entries if e.doc]
    found: dict[tuple, dict[str, list[Entry]]] = {}
    for e in done:
        found.setdefault(setting_key(e), {}).setdefault(e.strategy, []).append(e)
    result = []
    for methods in found.values():
        cells = sorted((Cell(m, runs) for m, runs in methods.items()), key=lambda c: c.method != "cpc")
        result.append(Setting(setting_name(cells[0].runs[0], done), cells))
    return result


def series(entries: list[Entry], x: str) -> dict[str, dict[int, list[Entry]]]:
    """Completed runs as lines over ``x`` (``depth``): one per method and setting other than ``x``, seed and
    step count (a memory figure does not depend on how many steps ran), each point the runs at one ``x``."""
    done = [e for e in entries if e.doc]
    keys = tuple(k for k in SETTING if k not in (x, "steps"))
    lines: dict[str, dict[int, list[Entry]]] = {}
    for e in done:
        others = setting_name(e, done, keys)
        name = e.strategy if others == "one setting" else f"{e.strategy} · {others}"
        lines.setdefault(name, {}).setdefault(e.config[x], []).append(e)
    return {k: dict(sorted(v.items())) for k, v in lines.items()}
