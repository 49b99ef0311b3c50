"""The report as one self-contained HTML page: tables as HTML, plots as PNG data URIs; nothing fetched."""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}
.left{text-align:left}caption{text-align:left;font-weight:bold;padding:4px 0}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}p.note{color:#555;font-size:13px}"""


@dataclass
class Figure:
    """A plot: its file name in the report folder, a caption, and its PNG bytes."""

    name: str
    caption: str
    data: bytes


@dataclass
class Section:
    """A heading with notes, tables and figures, in that order."""

    heading: str
    notes: list[str] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)  # (file name of its SVG export, table)
    figures: list[Figure] = field(default_factory=list)


def _plain(cell) -> str:
    if isinstance(cell, Text):
        return cell.plain
    return Text.from_markup(cell).plain if isinstance(cell, str) else str(cell)


def _row(texts: list[str], align: list[str], tag: str) -> str:
    tags = (f"<{tag}{a}>{html.escape(c)}</{tag}>" for a, c in zip(align, texts, strict=True))
    return "<tr>" + "".join(tags) + "</tr>"


def cells(table: Table) -> list[list[str]]:
    """The table's header and rows as plain text (markup and styles dropped), header first."""
    columns = [list(c.cells) for c in table.columns]
    return [[_plain(c.header) for c in table.columns],
            *([_plain(col[r]) for col in columns] for r in range(table.row_count))]


def csv_text(table: Table) -> str:
    """The table as CSV: the header row, then one row per table row, cells as the report shows them."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(cells(table))
    return out.getvalue()


def html_table(table: Table) -> str:
    """A rich ``Table`` as an HTML table with the same title, headers, cells and left-justified columns."""
    align = [' class="left"' if c.justify == "left" else "" for c in table.columns]
    head, *rows = cells(table)
    head = _row(head, align, "th")
    body = "".join(_row(row, align, "td") for row in rows)
    return (f"<table><caption>{html.escape(_plain(table.title or ''))}</caption>"
            f"<thead>{head}</thead><tbody>{body}</tbody></table>")


def html_figure(figure: Figure) -> str:
    data = base64.b64encode(figure.data).decode()
    return f'<figure><img alt="{html.escape(figure.caption)}" src="data:image/png;base64,{data}"></figure>'


def render(title: str, sections: list[Section]) -> str:
    """The whole page."""
    body = []
    for s in sections:
        body.append(f"<h2>{html.escape(s.heading)}</h2>")
        body += [f'<p class="note">{html.escape(line)}</p>' for n in s.notes for line in n.splitlines()]
        body += [html_table(t) for _, t in s.tables]
        body += [html_figure(f) for f in s.figures]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n"
            + "\n".join(body) + "\n</body></html>\n")
