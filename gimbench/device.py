"""What differs between the CPU and a CUDA device, in one place: waiting for queued work, reading a clock
that covers it, the random generators, emptying the cache, and the allocator's own figures."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


def rng_state(device: torch.device) -> tuple:
    """The host generator's state, and every CUDA generator's on a CUDA run."""
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if device.type == "cuda" else None


def set_rng_state(state: tuple) -> None:
    """Put back what ``rng_state`` returned."""
    host, cuda = state
    torch.set_rng_state(host)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


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


def all_rng_states() -> list:
    """Every CUDA device's generator state (none without CUDA), for a checkpoint."""
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


def set_all_rng_states(states: list) -> None:
    """Put back what ``all_rng_states`` returned, where the same devices exist."""
    if states and torch.cuda.is_available() and len(states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states)


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
