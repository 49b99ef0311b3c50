"""How a run ends early: a non-finite loss, running out of memory, or a stop signal.

Each becomes a ``Failure`` record (results.json's ``failure``: ``{"reason", "message", "step", ...}``) and a
``RunEnded`` exception carrying the written result, so callers exit non-zero. ``Locator`` wraps the
step's meter to remember which (module, phase) is running, which is where an out-of-memory happened.
"""

from __future__ import annotations

import errno
from contextlib import AbstractContextManager

import torch

from gimbench.config import one_line
from gimbench.device import allocator_line
from gimbench.profiling.meter import NULL_METER, Meter
from gimbench.profiling.profile import Profiler
from gimbench.results.schema import Failure
from gimbench.trainer import NonFiniteLoss

MIB = 2**20


class RunEnded(Exception):
    """The run stopped before completing; ``result`` (status "interrupted" or "failed") is already written."""

    def __init__(self, result, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.result, self.exit_code = result, exit_code


class _At:
    """Enters ``inner`` with ``locator.where`` set to ``key``; clears it only when the block ends cleanly."""

    __slots__ = ("inner", "key", "locator")

    def __init__(self, locator: Locator, key: tuple, inner: AbstractContextManager) -> None:
        self.locator, self.key, self.inner = locator, key, inner

    def __enter__(self) -> None:
        self.locator.where = self.key
        self.inner.__enter__()

    def __exit__(self, *exc) -> bool | None:
        suppressed = self.inner.__exit__(*exc)
        if exc[0] is None:
            self.locator.where = None
        return suppressed


class Locator(Meter):
    """Delegates to the step's meter and remembers the (module, phase) running now.

    ``where`` is ``(module, phase)``, ``(None, "backward")`` inside one backward through several
    modules, or ``None`` between phases (drawing the batch, the trainer's own work).
    """

    def __init__(self) -> None:
        self.inner: Meter = NULL_METER
        self.where: tuple[int | None, str] | None = None

    def around(self, meter: Meter) -> Locator:
        self.inner, self.where = meter, None
        return self

    def step(self) -> AbstractContextManager[None]:
        return self.inner.step()

    def phase(self, module: int, name: str) -> AbstractContextManager[None]:
        return _At(self, (module, name), self.inner.phase(module, name))

    def backward(self, network: torch.nn.Module) -> AbstractContextManager[None]:
        return _At(self, (None, "backward"), self.inner.backward(network))


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure (CUDA or CPU allocator, or Python's)."""
    return isinstance(error, torch.OutOfMemoryError | MemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error))


def _place(where: tuple[int | None, str] | None, names: list[str]) -> tuple[str, dict]:
    if where is None:
        return "outside the modules' phases (drawing or moving the batch)", {"module": None, "phase": None}
    module, phase = where
    if module is None:
        return f"in the {phase} pass through every module", {"module": None, "phase": phase}
    return f"in module {module} ({names[module]}), phase {phase}", {"module": module, "module_name": names[module],
                                                                  "phase": phase}


def _measured(profiler: Profiler) -> str:
    figures, memory, device = [], profiler.step_memory(), profiler.device
    if memory.get("peak_memory_bytes") is not None:
        figures.append(f"step peak {memory['peak_memory_bytes'] / MIB:.1f} MiB over "
                       f"{memory['memory_steps']} memory-tracked steps ({profiler.backend})")
    if (line := allocator_line(device)) is not None:
        figures.append(line)
    return "; ".join(figures) or "no memory figures measured yet (it came before the memory-tracked steps)"


def out_of_memory(error: BaseException, where, names: list[str], step: int, batch_size: int,
                  profiler: Profiler) -> Failure:
    """The failure record of an out-of-memory error at ``where`` after ``step`` steps (the message counts from 1,
    as the progress bar does: it names the step that failed)."""
    place, fields = _place(where, names)
    detail = one_line(error, 300)
    message = (f"out of memory {place} at step {step + 1} (batch size {batch_size}); measured so far: "
               f"{_measured(profiler)}. Try --find-max-batch, or a smaller --batch-size. ({detail})")
    return Failure("out-of-memory", message, step, {**fields, "error": detail})


def workers_failed(error: OSError, workers: int, step: int) -> Failure:
    """The failure record of data worker processes the system would not start (a process or memory limit)."""
    detail = one_line(error)
    message = (f"cannot start {workers} data worker processes at step {step + 1} ({detail}); use fewer --workers, "
               "or --workers 0 to read batches in the training process")
    return Failure("workers-failed", message, step, {"workers": workers, "error": detail})


def worker_start_refused(error: BaseException, workers: int) -> bool:
    """Whether ``error`` is the system refusing to fork a data worker (no processes or memory left for one)."""
    return workers > 0 and isinstance(error, OSError) and error.errno in (errno.EAGAIN, errno.ENOMEM)


def non_finite(error: NonFiniteLoss, names: list[str], checkpoint_step: int | None, folder) -> Failure:
    """The failure record of a NaN or infinite loss; names the last good checkpoint, if any. ``step`` in the
    record is the steps completed before it; the message names the failing step counted from 1."""
    kept = (f"the last good checkpoint ({folder}/checkpoint.pt, step {checkpoint_step}) is kept"
            if checkpoint_step is not None else "no checkpoint was written before it (see --checkpoint-every)")
    message = (f"loss of module {error.module} ({names[error.module]}) is {error.value} at step {error.step + 1}; "
               f"{kept}")
    return Failure("non-finite-loss", message, error.step, {
        "module": error.module, "module_name": names[error.module], "phase": "loss", "loss": str(error.value),
        "checkpoint_step": checkpoint_step})


def _kept(folder, checkpoint_step: int | None) -> str:
    if checkpoint_step is None:
        return "no checkpoint of this run was written"
    return f"the last good checkpoint is {folder}/checkpoint.pt (step {checkpoint_step})"


def write_failed(error: BaseException, step: int, folder, checkpoint_step: int | None, command: str | None) -> Failure:
    """The record of a run that could not write a file (``WriteError``: disk full, read-only, ...) after
    ``step`` steps; it names the last good checkpoint and how to continue once the disk allows."""
    how = f"; once it can be written, resume with: {command}" if command and checkpoint_step is not None else ""
    message = f"{error} (after step {step}); {_kept(folder, checkpoint_step)}{how}"
    return Failure("write-failed", message, step, {
        "path": str(getattr(error, "path", "")), "error": one_line(error), "checkpoint_step": checkpoint_step,
        "resume_command": command})


def interrupted(signal_name: str, step: int, total: int, folder, command: str | None) -> Failure:
    """The record of a run stopped by a signal after ``step`` steps, and how to resume it (``command`` is
    ``None`` for a run that cannot be resumed: one of several processes)."""
    how = f"resume with: {command}" if command else "runs of several processes (--nproc) cannot be resumed yet"
    message = (f"interrupted by {signal_name} after step {step} of {total}; checkpoint and results.json are in "
               f"{folder}\n{how}")
    return Failure("interrupted", message, step, {"signal": signal_name, "checkpoint_step": step,
                                                  "resume_command": command})
