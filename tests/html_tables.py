"""Read the tables and images back out of an HTML report (stdlib parser; tests only)."""

from __future__ import annotations

from html.parser import HTMLParser


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None
        self._caption = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "caption":
            self._caption = True
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs).get("src", ""))

    def handle_endtag(self, tag):
        if tag == "caption":
            self._caption = False
        elif tag in ("td", "th"):
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._caption:
            self.tables[-1]["caption"] += data
        elif self._cell is not None:
            self._cell.append(data)


def read_html(text: str) -> tuple[list[dict], list[str]]:
    """The page's tables (caption, rows of cell texts, header row first) and its images' ``src``."""
    reader = _Reader()
    reader.feed(text)
    return reader.tables, reader.images


def table(tables: list[dict], caption_start: str) -> list[dict]:
    """The rows of the first table whose caption starts so, as dicts keyed by the header."""
    found = next(t for t in tables if t["caption"].startswith(caption_start))
    header, *rows = found["rows"]
    return [dict(zip(header, row, strict=True)) for row in rows]
