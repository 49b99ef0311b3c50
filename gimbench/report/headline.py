"""The README's headline from comparison folders: each row against cpc, as a markdown table with the provenance
of every figure (date, machine, backend, command) under it.

The table, the figure (``gimbench.report.headline_plot``) and this text come from one ``gimbench headline`` call,
so the picture and the numbers under it cannot drift apart. A row is a comparison's row label (``cpc``,
``cpc-accumulate4``, ``gim-modules6``, any label a comparison adds) or, for a plain run folder, its strategy; a
*setting* is everything but the row (modality, preset, batch, depth, ...), as in the report's verdict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gimbench.config import ConfigError
from gimbench.report.collect import Entry
from gimbench.report.groups import SETTING, Cell, Setting, setting_key
from gimbench.report.noise import ratio_decimals
from gimbench.report.verdict import accuracy, mean_ratio, peak, step_ms, tasks
from gimbench.results.atomic import write_atomic
from gimbench.sweep.compare import row_of

MIB = 2**20
MIN_TIMED = 5  # timed steps a row needs before its time ratio is a headline figure (issue #26)
BEGIN = "<!-- gimbench headline: begin (written by `gimbench headline`, docs/compare.md; do not edit) -->"
END = "<!-- gimbench headline: end -->"
# Options of the recorded command that name where it wrote or how it printed, not what it measured.
NOT_MEASURED = {"--out": 1, "--name": 1, "--quiet": 0, "--overwrite": 0}


def row_label(entry: Entry) -> str:
    """The comparison's label of the row (``cpc-accumulate4``; a later round's ``cpc-accumulate4-r2`` is a run of
    that row), or the strategy of a run outside a comparison; ``gim-per-layer`` for one module per layer
    (``gim-modules<depth>``), so networks of different depths share that row."""
    label = row_of((entry.record or {}).get("label") or entry.strategy)
    return "gim-per-layer" if label == f"gim-modules{entry.config.get('depth')}" else label


def short_name(entry: Entry) -> str:
    """``audio paper d6 b16`` or ``resnet50 paper d5 b32``: what a column group of the table stands for (the
    network where one was named, else the modality)."""
    c = entry.config
    what = c["network"] if c.get("network") not in (None, "auto") else c["modality"]
    return f"{what} {c['preset']} d{c['depth']} b{c['batch_size']}"


def settings(entries: list[Entry]) -> list[Setting]:
    """Completed runs by setting (in order of first appearance), each setting's runs by row label, the row
    labelled ``cpc`` first (the baseline); ``ConfigError`` when no run completed."""
    found: dict[tuple, dict[str, list[Entry]]] = {}
    for e in (e for e in entries if e.doc):
        found.setdefault(setting_key(e), {}).setdefault(row_label(e), []).append(e)
    if not found:
        raise ConfigError("no completed run in the folders given: nothing to draw (gimbench report shows them)")
    result = []
    for rows in found.values():
        cells = sorted((Cell(label, runs) for label, runs in rows.items()), key=lambda c: c.method != "cpc")
        result.append(Setting(short_name(cells[0].runs[0]), cells))
    return _unique_names(result)


def _unique_names(found: list[Setting]) -> list[Setting]:
    """Settings that share a short name (they differ in lr, steps, ...) numbered, so no two columns read alike."""
    names = [s.name for s in found]
    for i, s in enumerate(found, 1):
        if names.count(s.name) > 1:
            s.name = f"{s.name} #{i}"
    return found


@dataclass
class Headline:
    """The settings whose memory and time are shown, and the probed settings (``--accuracy``) whose accuracy is
    shown beside those of the same modality that ran no probe (memory at the paper's sizes, accuracy after
    training the tiny preset long enough)."""

    found: list[Setting]
    probed: list[Setting]

    def accuracy_of(self, setting: Setting) -> Setting | None:
        """Where ``setting``'s accuracy comes from: itself where its rows were probed, else the first probed
        setting of its modality, else nowhere."""
        if tasks(setting):
            return setting
        modality = setting.baseline.runs[0].config["modality"]
        return next((p for p in self.probed if p.baseline.runs[0].config["modality"] == modality and tasks(p)), None)


def by_batch(found: list[Setting]) -> list[list[Setting]]:
    """Settings that differ only in batch size, together (in order): a group of several is drawn against batch."""
    keys = tuple(k for k in SETTING if k not in ("batch_size", "steps"))
    groups: dict[tuple, list[Setting]] = {}
    for s in found:
        groups.setdefault(setting_key(s.baseline.runs[0], keys), []).append(s)
    return [sorted(g, key=lambda s: s.baseline.runs[0].config["batch_size"]) for g in groups.values()]


def iqr(doc: dict) -> float | None:
    return doc["step"].get("time_ms_iqr")


def ratio_text(value: float | None, cell: Cell | None = None, base: Cell | None = None) -> str:
    """``0.41``: a ratio without its ``x`` (the column says it); given the two rows, only the decimals their
    step times' spread supports (``gimbench.report.noise``, the report's rule)."""
    if value is None:
        return ""
    return f"{value:.{2 if cell is None or base is None else ratio_decimals(value, cell, base)}f}"


def mib_text(cell: Cell) -> str:
    s = cell.spread(peak)
    return "" if s is None else f"{s.mean / MIB:.{1 if s.mean < 100 * MIB else 0}f}"


def row(setting: Setting | None, label: str) -> Cell | None:
    """The row ``label`` of ``setting``, ``None`` where it has none."""
    return next((c for c in setting.cells if c.method == label), None) if setting else None


def accuracy_text(cell: Cell | None, task: str) -> str:
    s = cell.spread(accuracy(task)) if cell else None
    return "" if s is None else f"{100 * s.mean:.1f}"


def columns(headline: Headline, setting: Setting) -> list[str]:
    source = headline.accuracy_of(setting)
    where = "" if source is None or source is setting else f" ({source.baseline.runs[0].config['preset']})"
    return [f"{setting.name}: MiB", f"x {setting.baseline.method}", "x time",
            *(f"{t} %{where}" for t in (tasks(source) if source else []))]


def cells(headline: Headline, setting: Setting, label: str) -> list[str]:
    """The row ``label``'s cells in ``setting``'s columns (empty where the setting has no such row)."""
    cell, base, source = row(setting, label), setting.baseline, headline.accuracy_of(setting)
    measured = [mib_text(cell), ratio_text(mean_ratio(cell, base, peak)),
                ratio_text(mean_ratio(cell, base, step_ms), cell, base)] if cell else ["", "", ""]
    return measured + [accuracy_text(row(source, label), t) for t in (tasks(source) if source else [])]


def table(headline: Headline) -> str:
    """The markdown table: a line per row label (in order of first appearance), a column group per setting."""
    found = headline.found
    labels = list(dict.fromkeys(c.method for s in found for c in s.cells))
    head = ["row", *(h for s in found for h in columns(headline, s))]
    lines = [head, ["---"] * len(head)]
    lines += [[f"`{label}`", *(x for s in found for x in cells(headline, s, label))] for label in labels]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def timed_steps(setting: Setting) -> tuple[int, int]:
    counts = [e.doc["step"].get("timed_steps") or 0 for c in setting.cells for e in c.runs]
    return min(counts), max(counts)


def command(sweep: dict | None) -> str:
    """The comparison's recorded command without where it wrote (``--out``, ``--name``) or how it printed."""
    argv = list((sweep or {}).get("command") or [])
    kept, i = [], 0
    while i < len(argv):
        name, joined, _ = argv[i].partition("=")  # --out=DIR is one word, --out DIR two
        skip = NOT_MEASURED.get(name)
        kept += [] if skip is not None else [argv[i]]
        i += 1 + (0 if joined else skip or 0)
    return " ".join(kept)


def provenance(setting: Setting, sweeps: list[dict], timing: bool = True) -> str:
    """When, where, with which backend and by which command the setting's figures were measured; with ``timing``,
    how many timed steps each row's time comes from (flagged under ``MIN_TIMED``), else that only its accuracy
    is shown."""
    first = setting.baseline.runs[0]
    sweep = next((s for s in sweeps if Path(s["folder"]) == first.folder.parent.parent), None)
    env = first.doc.get("environment") or {}
    when = f"{sweep['started'][:10]}, " if sweep and sweep.get("started") else ""
    how = f"`{command(sweep)}`" if command(sweep) else "runs outside a comparison"
    return (f"- {setting.name}: {how}; {when}{env.get('device')} ({env.get('device_name')}), "
            f"{_threads(env.get('threads'))}, torch {env.get('torch')}, {first.doc.get('memory_backend')}, "
            f"{(env.get('git_commit') or '')[:7] or 'commit ?'}; {_timed(setting) if timing else 'accuracy only'}.")


def _timed(setting: Setting) -> str:
    low, high = timed_steps(setting)
    short = f" (under {MIN_TIMED}: its time ratios are provisional)" if low < MIN_TIMED else ""
    return f"{low if low == high else f'{low}-{high}'} timed steps a row{short}"


def _threads(count: int | None) -> str:
    return "threads not recorded" if count is None else f"{count} thread{'s' if count != 1 else ''}"


def short_rows(found: list[Setting]) -> list[str]:
    """``setting: label`` of every row with fewer than ``MIN_TIMED`` timed steps."""
    return [f"{s.name}: {c.method}" for s in found for c in s.cells
            if any((e.doc["step"].get("timed_steps") or 0) < MIN_TIMED for e in c.runs)]


def block(headline: Headline, sweeps: list[dict], image: Path, page: Path) -> str:
    """The README's headline: the figure (linked relative to the folder of ``page``, the markdown file it goes
    into), the table, the provenance."""
    link = Path(os.path.relpath(image.resolve(), page.resolve().parent)).as_posix()
    used = [p for p in headline.probed if any(headline.accuracy_of(s) is p for s in headline.found)]
    notes = "\n".join([*(provenance(s, sweeps) for s in headline.found),
                        *(provenance(s, sweeps, timing=False) for s in used)])
    return (f"![Step peak memory and step time of each row against cpc]({link})\n\n{table(headline)}\n\n"
            f"x: over cpc's; time: median of timed steps, to the decimals its IQR allows; %: last-module linear "
            f"probe. Measured:\n\n{notes}\n")


def around_markers(page: Path) -> tuple[str, str]:
    """What ``page`` holds up to its begin marker and from its end marker on; ``ConfigError`` where it has not
    exactly one pair (checked before anything is written)."""
    if not page.is_file():
        raise ConfigError(f"--readme {page} does not exist (give the markdown file that holds the headline markers)")
    content = page.read_text(encoding="utf-8")
    if content.count(BEGIN) != 1 or content.count(END) != 1 or content.index(BEGIN) > content.index(END):
        raise ConfigError(f"--readme {page}: no headline markers ({BEGIN} ... {END}) to write between")
    before, rest = content.split(BEGIN)
    return f"{before}{BEGIN}\n", f"{END}{rest.split(END)[1]}"


def splice(page: Path, around: tuple[str, str], text: str) -> None:
    """Write ``page`` as ``text`` between its markers (``around_markers``): the whole file or nothing."""
    write_atomic(page, lambda f: f.write(f"{around[0]}{text}{around[1]}".encode()))
