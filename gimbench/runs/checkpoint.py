"""Checkpoints: everything a run needs to continue exactly, written atomically, loaded with ``weights_only=True``.

A checkpoint holds the network, every optimizer, the strategy's state, the random states (torch, CUDA,
numpy, python and the trainer's data generator, which is the data position), the step, the history of
per-step losses and times, the profiler's raw measurements and the sessions so far. Every value is a
tensor or a plain Python type, so ``torch.load(..., weights_only=True)`` reads it and cannot run code.

A run folder keeps the last two: ``checkpoint.pt`` (the newest) and ``checkpoint.prev.pt``.

Loading one checks it before use, so damage is refused in one line instead of training on silently: every
zip member's CRC (``torch.save`` writes a zip; a flipped byte inside a stored tensor still unpickles), then
whether its contents agree with each other and with the network being built (``check_contents``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from gimbench.config import ConfigError, one_line
from gimbench.results.atomic import write_atomic
from gimbench.results.schemas import CHECKPOINT
from gimbench.results.validate import check

FORMAT = "gimbench.checkpoint/1"
LATEST, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"
REQUIRED = ("model", "optimizers", "config", "step")


def save(folder: Path, state: dict) -> Path:
    """Write ``state`` as the folder's newest checkpoint; the one it replaces becomes ``checkpoint.prev.pt``.

    The new file is complete and synced under a temporary name before any rename, so a kill at any
    moment leaves every checkpoint either whole under its final name or absent.
    """
    folder = Path(folder)
    write_atomic(folder / LATEST, lambda f: torch.save({"format": FORMAT, **state}, f), keep_previous=folder / PREVIOUS)
    return folder / LATEST


def _check_crcs(path: Path) -> None:
    """Every member of the checkpoint's zip against the CRC ``torch.save`` recorded, or ``ConfigError`` naming
    the first that differs."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as e:
        raise ConfigError(f"{path} is damaged or not a gimbench checkpoint ({one_line(e)})") from None
    if bad is not None:
        raise ConfigError(f"{path} is damaged: its member {bad} fails its CRC check (bytes changed on disk)")


def load_file(path: Path) -> dict:
    """One checkpoint file, or ``ConfigError`` saying in one line what is wrong with it."""
    try:
        _check_crcs(path)
        state = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except ConfigError:
        raise
    except Exception as e:  # any unpickling or zip error means a damaged file, not a bug of ours
        raise ConfigError(f"{path} is damaged or not a gimbench checkpoint ({one_line(e)})") from None
    missing = [key for key in REQUIRED if not isinstance(state, dict) or key not in state]
    if missing:
        raise ConfigError(f"{path} is not a gimbench checkpoint (no {', '.join(missing)})")
    check(state, CHECKPOINT, path, "the checkpoint is damaged or was not written by gimbench")
    return state


def newest(folder: Path) -> Path:
    """The newest checkpoint file of a run folder, or ``ConfigError`` when it has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a run folder (no such directory)")
    if (folder / LATEST).exists() and not (folder / LATEST).is_file():
        raise ConfigError(f"{folder / LATEST} is not a file (a directory?): move it away to continue from "
                          f"{PREVIOUS}, or remove it")
    for name in (LATEST, PREVIOUS):  # the previous one alone exists only after a kill between two renames
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"{folder} has no checkpoint ({LATEST}): nothing to load")


def load(folder: Path, name: str | None = None) -> dict:
    """A run folder's checkpoint ``name`` (default: its newest); if the newest is damaged, the error says
    whether an older one exists."""
    path = Path(folder) / name if name else newest(folder)
    try:
        return load_file(path)
    except ConfigError as e:
        older = Path(folder) / PREVIOUS
        if path.name == LATEST and older.is_file():
            raise ConfigError(f"{e}; the previous checkpoint {older} exists: rename it to {path} to use it") from None
        raise


def described(folder: Path, steps: int | None, name: str = LATEST) -> dict:
    """Checkpoint ``name`` of a run folder, refusing ``checkpoint.pt`` unless it holds the ``steps`` that the
    folder's results.json describes (``None``: results.json records no step count). ``PREVIOUS``, asked for
    by name, is loaded whatever its step."""
    folder = Path(folder)
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool)):
        raise ConfigError(f"{folder}/results.json is damaged: its steps_completed is {steps!r} "
                          f"({type(steps).__name__}), not a whole number")
    path = folder / name
    if not path.is_file():
        hint = f"; {PREVIOUS} exists: pass --checkpoint prev to use it" if name == LATEST and \
            (folder / PREVIOUS).is_file() else ""
        what = "is not a file (a directory?)" if path.exists() else "does not exist"
        raise ConfigError(f"{path} {what}{hint}")
    state = load(folder, name)
    if name == LATEST and steps is not None and state["step"] != steps:
        raise ConfigError(f"{folder / LATEST} holds step {state['step']} but results.json describes step {steps}: "
                          "they are not the same network (pass --checkpoint prev to use the previous checkpoint "
                          "on purpose)")
    return state


def check_contents(state: dict, network: torch.nn.Module, optimizers: list) -> None:
    """Whether a loaded checkpoint's parts (their types already checked by its schema) agree with each other and
    with the ``network`` and ``optimizers`` built for the run: a ``ValueError`` naming the first that does not.
    ``load_state_dict`` checks the network's keys and shapes, but takes a short history, optimizer state of any
    shape and other optimizer settings, which fail only later, mid-training or while writing results."""
    step = state["step"]
    for key, values in state.get("history", {}).items():
        if len(values) != step:
            raise ValueError(f"its history.{key} does not hold one entry for each of its {step} steps")
    isolated = state.get("profile", {}).get("isolated")
    if isolated is not None and len(isolated) != len(network):
        raise ValueError(f"its profile.isolated holds {len(isolated)} figures for {len(network)} modules")
    if len(state["optimizers"]) != len(optimizers):
        raise ValueError(f"it holds {len(state['optimizers'])} optimizers for {len(optimizers)} modules")
    for k, (optimizer, saved) in enumerate(zip(optimizers, state["optimizers"], strict=True)):
        if (optimizer is None) != (saved is None):
            raise ValueError(f"its optimizer {k} is {'missing' if saved is None else 'one the run does not have'}")
        if optimizer is not None:
            _check_optimizer(k, optimizer, saved)


def _check_optimizer(k: int, optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Optimizer ``k``'s saved settings must be the run's (they come from its options, which a resume keeps) and
    its state (Adam's moments) must have the shape and type of the parameter it belongs to."""
    groups = saved["param_groups"]
    if len(groups) != len(optimizer.param_groups):
        raise ValueError(f"optimizer {k} holds {len(groups)} parameter groups, the run's has "
                         f"{len(optimizer.param_groups)}")
    for group, own in zip(groups, optimizer.param_groups, strict=True):
        differ = sorted(key for key in own.keys() | group.keys() if key != "params" and group.get(key) != own.get(key))
        if differ or len(group["params"]) != len(own["params"]):
            raise ValueError(f"optimizer {k}'s settings differ from the run's ({', '.join(differ) or 'parameters'})")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    ids = [i for group in groups for i in group["params"]]
    for i, param in zip(ids, params, strict=True):
        for name, value in saved["state"].get(i, {}).items():
            scalar = value.dim() == 0 and value.is_floating_point()
            if not scalar and (value.shape != param.shape or value.dtype != param.dtype):
                raise ValueError(f"optimizer {k}'s {name} has shape {tuple(value.shape)} ({value.dtype}) for a "
                                 f"parameter of shape {tuple(param.shape)} ({param.dtype})")
