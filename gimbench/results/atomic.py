"""Atomic file writes: a reader, or a run killed at any moment, sees a file whole or not at all.

A write the system refuses (a full disk, a read-only folder, no permission, a directory in the way)
raises ``WriteError``, one line naming the file and the reason; the file it would have replaced is left
as it was and no temporary file stays behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

# What the environment, not a bug, makes a write fail with.
REFUSED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
           errno.EFBIG, errno.ENAMETOOLONG}


class WriteError(OSError):
    """A file could not be written because of the disk or folder (full, read-only, no permission, ...)."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, f"cannot write {path}: {cause.strerror or cause}")
        self.path = Path(path)

    def __str__(self) -> str:
        return self.strerror


def refused(error: BaseException) -> OSError | None:
    """The ``OSError`` in ``error``'s chain that says the system refused a write, if any (torch.save reports a
    full disk as a RuntimeError whose context is the OSError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in REFUSED:
            return error
        error = error.__cause__ or error.__context__
    return None


def write_atomic(path: Path, write: Callable[[BinaryIO], None], *, keep_previous: Path | None = None) -> None:
    """Write ``path`` through ``write(file)``: the content goes to ``.<name>.tmp`` beside it, is synced,
    then renamed over ``path``, and the folder entry is synced too. With ``keep_previous``, the file
    being replaced is first renamed there. One writer per path (``gimbench.runlock``): a stale temp file
    is overwritten.

    Raises:
        WriteError: the system refused the write; ``path`` (and ``keep_previous``) are as they were.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a directory is in the way")
        with open(tmp, "wb") as f:  # the usual permissions (umask), unlike mkstemp's owner-only file
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):  # a read-only folder: nothing could have been created there either
            tmp.unlink(missing_ok=True)
        cause = refused(e)
        if cause is not None:
            raise WriteError(path, cause) from None
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
