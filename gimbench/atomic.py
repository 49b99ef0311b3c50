"""Atomic file writes: a reader, or a run killed at any moment, sees a file whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: Path, write: Callable[[BinaryIO], None], *, keep_previous: Path | None = None) -> None:
    """Write ``path`` through ``write(file)``: the content goes to ``.<name>.tmp`` beside it, is synced,
    then renamed over ``path``, and the folder entry is synced too. With ``keep_previous``, the file
    being replaced is first renamed there. One writer per path: a stale temp file is overwritten.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:  # the usual permissions (umask), unlike mkstemp's owner-only file
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
