"""Where a report goes: a new or empty folder, or with ``--overwrite`` a previous report, never anything else.

``--overwrite`` once deleted whatever ``--out`` named, run folders and a live run's checkpoint included (issue 28).
Now it replaces only a folder the report writer made, recognised by its ``report.json`` of schema
``gimbench.report/1`` and nothing beside it but what the writer puts there. A folder holding a run or a sweep
(``results.json``, a checkpoint, ``sweep.json``, a live ``.gimbench.lock``) at any depth is refused in one line,
and so is any other folder (a folder of runs, a home directory); none of them is touched.

A report is built in a hidden sibling folder and renamed into place once whole, every file synced first (a full
disk may only say so at the sync), so a full disk or a crash leaves the previous report, or none, under the final
name: never a truncated file. A crash between the two renames of a replacement leaves the previous report
whole in ``.<name>.old-<pid>`` beside it; one during the build, the partial ``.<name>.building-<pid>``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from gimbench.errors import ConfigError
from gimbench.results.paths import check_utf8
from gimbench.runs.checkpoint import LATEST, PREVIOUS
from gimbench.runs.folder import LOCK, holder

SCHEMA = "gimbench.report/1"
WRITTEN = {"index.html", "report.json", "tables", "plots", "csv"}  # all a report folder holds
PROTECTED = {"results.json", LATEST, PREVIOUS, "sweep.json", LOCK}  # what makes a folder a run's or a sweep's
KEPT = "--overwrite replaces only a previous gimbench report, so it is left as it is"
SEARCHED = 100_000  # folders looked into for a run before giving up (a refusal either way; this names the run)


def is_report(folder: Path) -> bool:
    """Whether ``folder`` holds a report written by gimbench (its index.html may have been removed since) and
    nothing else at its top."""
    names = {p.name for p in folder.iterdir()}
    if not names <= WRITTEN or "report.json" not in names:
        return False
    try:
        doc = json.loads((folder / "report.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("schema") == SCHEMA


def run_inside(folder: Path) -> Path | None:
    """The first file below ``folder`` (at any depth, links not followed) that belongs to a run or a sweep."""
    for seen, (top, dirs, files) in enumerate(os.walk(folder)):
        found = PROTECTED.intersection(files) or PROTECTED.intersection(dirs)
        if found:
            return Path(top) / sorted(found)[0]
        if seen >= SEARCHED:
            return None
    return None


def refusal(folder: Path, overwrite: bool) -> str | None:
    """Why the report may not be written to the existing folder ``folder``, or ``None`` where it may."""
    if not folder.is_dir():
        return "exists and is not a folder"
    if not any(folder.iterdir()):
        return None
    if not overwrite:
        return "exists and is not empty (pass --overwrite to replace a previous report)"
    found = run_inside(folder)
    if found is not None:
        pid = holder(found.parent) if found.name == LOCK else None
        if pid is not None:
            return f"{found.parent} is in use by another gimbench command (pid {pid}); {KEPT}"
        return f"holds a gimbench run or sweep ({found}); {KEPT}"
    if not is_report(folder):
        return f"is not a previous gimbench report (no report.json of one, or other files beside it); {KEPT}"
    return None


def check_out(given: str, overwrite: bool) -> Path:
    """The folder ``--out`` names (a symbolic link followed), once it is known that the report may be written
    there; ``ConfigError`` (one line naming ``--out``) otherwise. Nothing is created or removed."""
    check_utf8(given, "--out")
    folder = Path(given)
    try:
        os.stat(folder)  # follows links: a loop (ELOOP) or a file on the way (ENOTDIR) ends here in one line
    except FileNotFoundError:
        if folder.is_symlink():
            raise ConfigError(f"--out {given}: a symbolic link to a path that does not exist") from None
        return folder
    except OSError as e:
        raise ConfigError(f"--out {given}: {e.strerror or e}") from None
    if folder.is_symlink():
        folder = Path(os.path.realpath(folder))  # the report replaces the folder linked to, never the link
    try:
        why = refusal(folder, overwrite)
    except OSError as e:
        raise ConfigError(f"--out {given}: {e.strerror or e}") from None
    if why is not None:
        raise ConfigError(f"--out {given}: {why}")
    return folder


def replace_whole(folder: Path, build: Callable[[Path], None]) -> None:
    """Call ``build(empty_folder)`` on a sibling of ``folder``, then rename the whole result to ``folder``
    (replacing an empty folder or, once checked again, a previous report); on any failure nothing has changed."""
    folder = Path(os.path.abspath(folder))
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = folder.with_name(f".{folder.name}.building-{os.getpid()}")
    try:
        building.mkdir()
        build(building)
        _swap(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)  # gone already where the swap succeeded


def _swap(new: Path, folder: Path) -> None:
    if not folder.is_dir() or not any(folder.iterdir()):
        os.rename(new, folder)  # where there is none, or over an empty folder: one step
        return
    why = refusal(folder, overwrite=True)  # checked again: something may have moved in since --out was checked
    if why is not None:
        raise ConfigError(f"--out {folder}: {why}")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    os.rename(folder, old)
    try:
        os.rename(new, folder)
    except OSError:
        os.rename(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def put(path: Path, data: bytes) -> None:
    """Write and sync one file of a report being built."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
