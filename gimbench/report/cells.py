"""The cells and tables every report shares: numbers formatted one way, tables whose numbers are never cut."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

MIB = 2**20


def num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f}"


def unit(values: list[int | None]) -> tuple[str, float]:
    """The unit a table of byte counts reads best in: KiB where its largest value is under 1 MiB (a tiny model's
    table is not all 0.0 and 0.1), else MiB."""
    largest = max((abs(v) for v in values if v is not None), default=0)
    return ("KiB", 1024) if largest < MIB else ("MiB", MIB)


def in_unit(value: int | None, scale: float) -> str:
    return "-" if value is None else f"{value / scale:.1f}"


TEXT_COLUMNS = ("module", "run", "method", "setting", "runs", "device", "memory backend", "folder", "error", "log",
                "status", "continue with",
                "batch sizes tried", "backend", "in phase", "grad")


def titled_table(title: str, columns: list[str]) -> Table:
    """A table whose numbers are never cut: number columns do not wrap, text columns fold to make room."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        text = column in TEXT_COLUMNS
        table.add_column(column, justify="left" if text else "right", no_wrap=not text,
                         overflow="fold" if text else "ellipsis")
    return table


class Fitted:
    """A table that, where the console is narrower than the table's narrowest layout, prints as several
    tables of its columns, each repeating the first ``keep`` (``#``, ``module``), so that no number is cut."""

    def __init__(self, table: Table, keep: int = 1) -> None:
        self.table, self.keep = table, keep

    def _need(self, i: int) -> int:
        """Column ``i``'s width: its widest cell for a number column; a text column folds to 16 at most."""
        c = self.table.columns[i]
        widest = max(Text.from_markup(x).cell_len if isinstance(x, str) else Text(str(x)).cell_len
                     for x in [c.header, *c.cells])
        return widest if c.no_wrap else min(16, widest)

    def _part(self, columns: list[int], title: str | None) -> Table:
        part = Table(title=title, title_justify="left")
        for i in columns:
            c = self.table.columns[i]
            part.add_column(c.header, justify=c.justify, no_wrap=c.no_wrap, overflow=c.overflow,
                            min_width=None if c.no_wrap else self._need(i))
        cells = [list(self.table.columns[i].cells) for i in columns]
        for r, row in enumerate(self.table.rows):
            part.add_row(*(col[r] for col in cells), style=row.style)
        return part

    def _fits(self, options: ConsoleOptions, columns: list[int]) -> bool:
        return sum(self._need(i) + 3 for i in columns) + 1 <= options.max_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        every = list(range(len(self.table.columns)))
        if self._fits(options, every):
            yield self.table
            return
        keep, chunk, parts = every[:self.keep], [], []
        for i in every[self.keep:]:
            if chunk and not self._fits(options, keep + chunk + [i]):
                parts.append(chunk)
                chunk = []
            chunk.append(i)
        parts.append(chunk)
        for n, chunk in enumerate(parts, 1):
            yield self._part(keep + chunk, f"{self.table.title} ({n}/{len(parts)})")
