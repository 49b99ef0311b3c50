"""What differs between the CPU and a CUDA device, in one place: waiting for queued work, reading a clock
that covers it, the random generators, emptying the cache, and the allocator's own figures."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

MIB = 2**20


def sync(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work; a no-op on the CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def clock(device: torch.device) -> Callable[[], float]:
    """Seconds (``perf_counter``) read after the device's queued work is done, so a difference covers it."""
    wait = sync(device)

    def now() -> float:
        wait()
        return time.perf_counter()

    return now


def rng_state() -> dict:
    """Every global random state (torch, each CUDA device's, numpy, python) as tensors and plain types, so a
    checkpoint holds it under ``torch.load(..., weights_only=True)``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict) -> None:
    """Put back what ``rng_state`` returned (the CUDA states only where the same devices exist)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


def empty_cache(device: torch.device) -> None:
    """Hand the caching allocator's free blocks back (after an out-of-memory error); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextmanager
def memory_cap(budget: int, device: torch.device) -> Iterator[None]:
    """Inside, the caching allocator of ``device`` refuses to hold more than ``budget`` bytes (a no-op on the CPU,
    where a try's real allocations are measured instead)."""
    if device.type != "cuda":
        yield
        return
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, budget / total), device)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()


def total_memory(kind: str) -> int:
    """Bytes of memory of a ``kind`` device: the first CUDA device's, or the machine's RAM for the CPU."""
    if kind == "cuda":
        return torch.cuda.get_device_properties(0).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def available(kind: str) -> bool:
    """Whether this machine has a device of ``kind`` ("cpu" always)."""
    return kind == "cpu" or (kind == "cuda" and torch.cuda.is_available())


def allocator_line(device: torch.device) -> str | None:
    """The CUDA allocator's peak against the device's memory, for a failure record; ``None`` on the CPU."""
    if device.type != "cuda":
        return None
    total = torch.cuda.get_device_properties(device).total_memory
    peak = torch.cuda.max_memory_allocated(device)
    return f"CUDA allocator peak {peak / MIB:.1f} MiB of {total / MIB:.0f} MiB on the device"


def name(device: torch.device, cpu_name: Callable[[], str]) -> str:
    """The device's model name (``cpu_name()`` for the CPU)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
