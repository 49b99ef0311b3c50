"""Run folders: where a run's results and checkpoint go, never overwritten by accident, with one writer at a time.

One writer: an advisory ``fcntl.flock`` on ``.gimbench.lock`` in the folder, holding the pid. A run, a resume,
a probe (and a sweep, on its sweep folder) hold it for their whole life; a second command on the same folder
ends with one line naming the holder's pid. The kernel drops a lock when its holder dies, so a lock file left
by a killed process (``SIGKILL``) is simply taken over. The holder removes the file when it is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from gimbench.config import ConfigError, RunConfig, one_line
from gimbench.results.atomic import WriteError
from gimbench.results.paths import check_utf8

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def default_name(cfg: RunConfig) -> str:
    """``<UTC timestamp>-<model>-<modality>-d<depth>``, and ``-m<modules>`` where ``--modules`` cuts fewer."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    cut = f"-m{cfg.modules}" if cfg.modules not in (None, cfg.depth) else ""
    return f"{stamp}-{cfg.model}-{cfg.modality}-d{cfg.depth}{cut}"


def check_name(name: str) -> None:
    """A run name is one plain path component, so it cannot escape ``--out``."""
    if not NAME.fullmatch(name) or len(name) > 200:
        raise ConfigError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only (no path separators)")


def named_folder(cfg: RunConfig) -> Path | None:
    """The folder an explicit ``--name`` asks for (``None`` without one); ``ConfigError`` for a bad name, or for
    a folder that exists when ``--overwrite`` is not given."""
    if cfg.name is None:
        return None
    check_name(cfg.name)
    folder = Path(cfg.out) / cfg.name
    if folder.exists() and not cfg.overwrite:
        raise ConfigError(f"run folder {folder} already exists (pass --overwrite to replace it)")
    return folder


RUN_FILES = ("results.json", "checkpoint.pt", "checkpoint.prev.pt")


def _replace(folder: Path) -> None:
    """Remove an existing run folder for ``--overwrite``; refuse a folder that holds no run, or one in use.
    A lock file left by a killed run (and nothing else) is an empty run folder."""
    contents = [p for p in folder.iterdir() if p.name != LOCK] if folder.is_dir() else None
    if contents is None or (contents and not any((folder / f).is_file() for f in RUN_FILES)):
        raise ConfigError(f"--overwrite: {folder} is not a gimbench run folder; it is left as it is")
    pid = holder(folder)
    if pid is not None:
        raise FolderBusy(f"--overwrite: {folder} is in use by another gimbench command (pid {pid}); it is left as is")
    shutil.rmtree(folder)


def create_run_folder(cfg: RunConfig) -> Path:
    """Create the run's folder under ``cfg.out``.

    An explicit ``--name`` that exists is an error unless ``--overwrite`` (which replaces only a run
    folder); a default name that exists (two runs in one second) gets a numeric suffix instead.
    """
    try:
        return _create(cfg)
    except ConfigError:
        raise
    except (OSError, ValueError) as e:  # a path the system refuses: too long, a NUL byte, no permission
        raise ConfigError(f"--out {cfg.out!r}: cannot create the run folder ({one_line(e)})") from None


def _create(cfg: RunConfig) -> Path:
    check_utf8(cfg.out, "--out")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {cfg.out!r} exists and is not a directory")
    folder = named_folder(cfg)
    if folder is None:
        base = default_name(cfg)
        folder, n = out / base, 1
        while folder.exists():
            n += 1
            folder = out / f"{base}-{n}"
    elif folder.exists():
        _replace(folder)
    folder.mkdir(parents=True)
    return folder


LOCK = ".gimbench.lock"


class FolderBusy(ConfigError):
    """Another live process holds the folder's lock."""


def _pid(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 32).decode(errors="replace").strip() or "?"


class RunLock:
    """``with RunLock(folder):`` holds the folder's lock, or raises ``FolderBusy`` (or ``WriteError`` where
    the folder cannot be written at all, e.g. read-only)."""

    def __init__(self, folder: Path, *, what: str = "run folder") -> None:
        self.path, self.what = Path(folder) / LOCK, what
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if not self.path.parent.is_dir():
            raise ConfigError(f"{self.path.parent} is not a {self.what} (no such directory)")
        while self.fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise WriteError(self.path, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _pid(fd)
                os.close(fd)
                raise FolderBusy(f"{self.path.parent} is in use: another gimbench command (pid {holder}) holds "
                                 f"this {self.what}; wait for it to end") from None
            if _same_file(fd, self.path):  # not unlinked by a holder that ended while we waited for the lock
                self.fd = fd
            else:
                os.close(fd)
        with contextlib.suppress(OSError):  # the pid is for the message only; a full disk may refuse it
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            os.close(self.fd)  # closing releases the lock
            self.fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def holder(folder: Path) -> int | None:
    """The pid holding ``folder``'s lock now, or ``None`` when no live process holds it."""
    try:
        fd = os.open(Path(folder) / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _pid(fd)
        return int(pid) if pid.isdigit() else -1
    finally:
        os.close(fd)
    return None
