"""``--find-max-batch``: the largest batch size whose measured step peak fits a memory budget.

Each try builds the run's network and trainer at one batch size and takes a few real training steps:
one warm-up cycle, then one schedule cycle of memory-tracked steps (``gimbench.runs.stepper``). On the CPU
a try fits when the allocator-level step peak (every byte the CPU allocator handed out, kernels' scratch
included) is within the budget. On CUDA the caching allocator is
capped at the budget (``torch.cuda.set_per_process_memory_fraction``) and a try fits when its steps
ran without ``torch.cuda.OutOfMemoryError``: real allocation decides. Batch sizes grow 1, 2, 4, ...
until one does not fit, then a binary search between the last that fit and the first that did not.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable

import torch

from gimbench.config import ConfigError, RunConfig, parse_size
from gimbench.device import empty_cache, memory_cap
from gimbench.results.schema import MaxBatch, Try
from gimbench.runs.stepper import Stepper

MIB = 2**20


def measure_try(cfg: RunConfig, batch_size: int, budget: int) -> tuple[Try, str]:
    """A warm-up cycle and one cycle of memory-tracked steps at ``batch_size``; the try and the backend."""
    try:
        stepper = Stepper(dataclasses.replace(cfg, batch_size=batch_size))
        stepper.warm_up()
        stepper.track_memory()
    except torch.cuda.OutOfMemoryError:
        return Try(batch_size, None, False), "cuda-allocator"
    peak = stepper.step_peak()
    return Try(batch_size, peak, peak <= budget), stepper.backend


def search(fits: Callable[[int], bool]) -> int:
    """The largest ``b >= 1`` with ``fits(b)`` (0 if not even 1 fits), assuming fit is monotone:
    doubling until a size does not fit, then bisecting."""
    low, high = 0, 1
    while fits(high):
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def find_max_batch(cfg: RunConfig, on_try: Callable[[Try], None] = lambda t: None) -> MaxBatch:
    """Search the largest batch size of a resolved config within ``cfg.memory_budget``.

    Raises:
        ConfigError: when not even batch size 1 fits.
    """
    budget = parse_size(cfg.memory_budget)
    tried: dict[int, Try] = {}
    backend = ""

    def fits(batch_size: int) -> bool:
        nonlocal backend
        t, backend = measure_try(cfg, batch_size, budget)
        gc.collect()  # the try's frames are gone once it has returned: free its tensors and cached blocks
        empty_cache(torch.device(cfg.device))
        tried[batch_size] = t
        on_try(t)
        return t.fits

    try:
        with memory_cap(budget, torch.device(cfg.device)):
            best = search(fits)
    except KeyboardInterrupt as interrupt:  # a stop signal (gimbench.runs.stopping): one line says where
        measured = ", ".join(map(str, tried)) or "none yet"
        interrupt.add_note(f"during the --find-max-batch search (batch sizes measured: {measured}); the run had "
                           "not begun and nothing was written")
        raise
    if best == 0:
        need = tried[1].peak_bytes
        needs = "runs out of memory" if need is None else f"needs {need / MIB:.1f} MiB"
        raise ConfigError(f"--memory-budget {cfg.memory_budget}: even batch size 1 {needs} ({backend})")
    return MaxBatch(budget, best, tried[best].peak_bytes, backend, list(tried.values()))
