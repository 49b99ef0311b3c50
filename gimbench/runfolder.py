"""Run folders: where a run's results and checkpoint go, never overwritten by accident."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from gimbench.config import ConfigError, RunConfig, one_line

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def default_name(cfg: RunConfig) -> str:
    """``<UTC timestamp>-<model>-<modality>-d<depth>``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{cfg.model}-{cfg.modality}-d{cfg.depth}"


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
    """Remove an existing run folder for ``--overwrite``; refuse a folder that holds no run."""
    if not folder.is_dir() or (any(folder.iterdir()) and not any((folder / f).is_file() for f in RUN_FILES)):
        raise ConfigError(f"--overwrite: {folder} is not a gimbench run folder; it is left as it is")
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
