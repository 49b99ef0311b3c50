"""``gimbench bench-compare OLD.json NEW.json``: memory regressions between two pytest-benchmark runs.

``--benchmark-compare-fail`` checks only times; this reads the memory figures the suite in
``benchmarks/`` stores in each benchmark's ``extra_info`` (``step_peak_bytes``, ``module_peak_bytes``,
``memory_backend``) and fails when a step or module peak grew by more than the allowed percentage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text

from gimbench.errors import ConfigError
from gimbench.results.schemas import BENCHMARKS, read

MIB = 2**20
PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%?\s*")


def parse_percent(text: str, flag: str = "--max-increase") -> float:
    """A non-negative percentage such as ``10%`` or ``2.5``, as a fraction (0.1, 0.025)."""
    match = PERCENT.fullmatch(str(text))
    if not match:
        raise ConfigError(f"{flag}: {text!r} is not a percentage; use e.g. 10% or 2.5")
    return float(match.group(1)) / 100


def load_memory(path: Path) -> dict[str, dict]:
    """Each benchmark's ``extra_info`` with memory figures, by full name, from a pytest-benchmark JSON."""
    try:
        doc = read(path, BENCHMARKS, "a pytest-benchmark JSON")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    found = {b.get("fullname", b["name"]): b.get("extra_info") or {} for b in doc["benchmarks"]}
    found = {name: info for name, info in found.items() if "step_peak_bytes" in info}
    unnamed = next((name for name, info in found.items() if "memory_backend" not in info), None)
    if unnamed is not None:
        raise ConfigError(f"{path}: {unnamed} has memory figures but no extra_info.memory_backend saying what "
                          "measured them")
    if not found:
        raise ConfigError(f"{path} has no benchmark with memory figures (extra_info.step_peak_bytes); "
                          f"was it written by 'pytest benchmarks/ --benchmark-json ...'?")
    return found


@dataclass
class Row:
    """One benchmark in both files: its step peak and the module peak that grew most."""

    name: str
    old: int
    new: int
    module: int | None  # index of the module with the largest relative growth
    module_change: float | None
    limit: float
    module_name: str | None = None  # its name, where the benchmark recorded module_names

    @property
    def short_name(self) -> str:
        """The test's name with its parameters, e.g. ``test_training_step[cpc-audio-d1]``."""
        return self.name.split("::")[-1]

    @property
    def worst(self) -> str:
        """The worst module as ``conv1`` (``0`` where the file has no module names), ``-`` without one."""
        return "-" if self.module is None else self.module_name or str(self.module)

    @property
    def change(self) -> float:
        return self.new / self.old - 1

    @property
    def regressed(self) -> bool:
        return self.change > self.limit or (self.module_change or 0.0) > self.limit


def worst_module(old: list, new: list) -> tuple[int | None, float | None]:
    """(index, relative growth) of the module whose peak grew most; (None, None) without comparable modules."""
    changes = [(k, b / a - 1) for k, (a, b) in enumerate(zip(old or [], new or [], strict=False)) if a and b]
    return max(changes, key=lambda kc: kc[1]) if changes else (None, None)


def compare(old: dict[str, dict], new: dict[str, dict], limit: float) -> list[Row]:
    """A row for every benchmark in both files, or ``ConfigError`` when none is comparable."""
    rows = []
    for name in sorted(old.keys() & new.keys()):
        a, b = old[name], new[name]
        if a.get("memory_backend") != b.get("memory_backend"):
            raise ConfigError(f"{name}: memory measured by {a.get('memory_backend')} in the old file and by "
                              f"{b.get('memory_backend')} in the new one; the figures are not comparable")
        k, module_change = worst_module(a.get("module_peak_bytes"), b.get("module_peak_bytes"))
        names = b.get("module_names") or []
        rows.append(Row(name, a["step_peak_bytes"], b["step_peak_bytes"], k, module_change, limit,
                        names[k] if k is not None and k < len(names) else None))
    if not rows:
        raise ConfigError("the two files have no benchmark in common")
    return rows


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def bench_memory_table(rows: list[Row], backend: str) -> Table:
    """Old and new step peaks, their change, the worst module's change, and the verdict."""
    limit = rows[0].limit
    table = Table(title=f"Memory: new vs old (MiB, {backend}; fail above {100 * limit:+.1f}%)", title_justify="left")
    for column in ("benchmark", "old peak", "new peak", "change", "worst module", "its change", ""):
        text = column in ("benchmark", "worst module")
        table.add_column(column, justify="left" if text else "right", overflow="fold", no_wrap=not text)
    for r in rows:
        verdict = Text("REGRESSION", "bold red") if r.regressed else Text("ok", "green")
        # Text, not a markup string: "[cpc-audio-d1]" would be read as a style tag and dropped.
        table.add_row(Text(r.short_name), f"{r.old / MIB:.2f}", f"{r.new / MIB:.2f}", _percent(r.change),
                      Text(r.worst), _percent(r.module_change), verdict)
    return table


def failure_line(rows: list[Row]) -> str | None:
    """The one line naming every regressed benchmark and what grew; ``None`` when none did."""
    regressed = [r for r in rows if r.regressed]
    if not regressed:
        return None
    what = "; ".join(f"{r.short_name} step {_percent(r.change)}"
                     + ("" if r.module is None else f", module {r.worst} {_percent(r.module_change)}")
                     for r in regressed)
    return (f"memory regression: {len(regressed)} of {len(rows)} benchmarks grew more than "
            f"{100 * rows[0].limit:.1f}%: {what}")
