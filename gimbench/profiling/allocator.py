"""Allocator-level peaks: every byte the device's allocator hands out, kernels' scratch included.

The memory meter drops a *mark* at every interval boundary and, after the step, asks for the highest
level between two marks. Two watches answer:

- ``CpuAllocatorWatch``: ``torch.profiler`` with ``profile_memory=True`` records every allocation and
  free the CPU allocator makes, with its size and pointer, in time order; a mark is a zero-length
  ``record_function`` event in the same stream. Levels are bytes allocated since the step began (what
  was allocated before the step is added by the meter, which knows the resident tensors).
- ``TrackerOnlyWatch``: no allocator at all, for CPU runs under torchrun: the profiler's session crashed
  module-parallel ranks (SIGSEGV while garbage-collecting, in 4-6 of 6 runs of 3 ranks on this machine),
  most likely as gloo's threads free tensors that the profiler records; figures are then the tracker's
  and the backend says so.
- ``CudaAllocatorWatch``: the caching allocator's own peak counter. A mark reads the peak since the
  previous mark, then resets it, so no stretch of the step is lost between marks (gaps included).
  Figures are absolute (everything the allocator holds for tensors on the device).

The CPU and CUDA watches also give the levels they read, in time order (``series``), from which the meter
keeps the step's timeline (``gimbench.profiling.timeline``); nothing is measured for it.

Why the profiler on the CPU: the tensor tracker sees only tensors that operators return; kernels
allocate scratch inside themselves (a conv backward whose input needs a gradient allocates several
times what it returns) that only the allocator sees. PyTorch has no CPU allocator statistics API, and
the profiler's memory events are the allocator's own reports (``c10::ProfiledCPUMemoryReporter``).
"""

from __future__ import annotations

import os
import sys
import warnings
from bisect import bisect_right
from collections.abc import Callable, Collection
from contextlib import contextmanager

import torch
from torch._C._profiler import RecordScope, _ExperimentalConfig
from torch.autograd import ProfilerActivity, ProfilerConfig, ProfilerState
from torch.autograd import _disable_profiler as disable_profiler
from torch.autograd import _enable_profiler as enable_profiler
from torch.autograd import _prepare_profiler as prepare_profiler
from torch.profiler import profile, record_function

from gimbench.device import clock as device_clock

MARK = "gimbench.mark."
# Given the addresses a step allocated, those of the memory made before it that the step's base counts.
Base = Callable[[set[int]], Collection[int]]


def no_base(allocated: set[int]) -> Collection[int]:
    """The default: no memory made before the step is in its base."""
    return ()
_quieted = False


def _quiet_first_session() -> None:
    """Spend, with stderr closed, the lines the first profiler session of a process prints from C++ and
    that say nothing about a run: Kineto's "gpuGetDeviceCount failed" on hosts without a GPU, and the
    CPU allocator's one-time "Memory block of unknown size was allocated before the profiling started"
    (the first free of a tensor made before profiling; that free is indeed not counted, see the meter)."""
    global _quieted
    if _quieted:
        return
    _quieted = True
    before = torch.ones(1)
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True):
                del before
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class CpuAllocatorWatch:
    """Marks and levels of the CPU allocator over one step, from the profiler's memory events."""

    absolute = False  # levels count from the step's start; the meter adds what was live before it
    counts = True
    source = "cpu allocator events"

    def __init__(self) -> None:
        self.marks = 0
        self._times: list[int] = []  # event times, ascending
        self._levels: list[int] = []  # bytes allocated since the step began, after each event
        self._mark_at: list[int] = []  # per mark: index of the last event at or before it (-1: none)
        self._mark_ns: list[int] = []  # per mark: its time, on the events' clock
        self.allocated_ptrs: set[int] = set()  # every address the allocator handed out during the step

    @contextmanager
    def step(self, base: Base = no_base):
        """Record the allocator during the step; levels are resolved when it ends. ``base(allocated)``: given
        the addresses the step allocated, those of the memory made before it that the step's base counts (the
        tracker's resident tensors and batch); a free of other memory made before the step is left out
        (``_levels_of``).

        The profiler is started through the calls ``torch.profiler.profile`` makes itself, with one
        difference it does not expose: only user-scope events (our marks) are recorded besides the
        allocator's. Recording every operator too cost 2 million events, 2.5 GiB of host memory and 6x
        the step time on one paper-preset audio GIM step (the negatives' deterministic index_put runs
        element by element), and ran the machine out of memory at batch 32."""
        _quiet_first_session()
        self.marks = 0
        activities = {ProfilerActivity.CPU}
        config = ProfilerConfig(ProfilerState.KINETO, False, True, False, False, False, _ExperimentalConfig())
        prepare_profiler(config, activities)
        enable_profiler(config, activities, {RecordScope.USER_SCOPE})
        try:
            yield
        finally:
            self._resolve(disable_profiler(), base)  # a step that raised is resolved too: its figures so far

    def mark(self) -> int:
        """A boundary now; returns its number."""
        with record_function(f"{MARK}{self.marks}"):
            pass
        self.marks += 1
        return self.marks - 1

    def _resolve(self, result, base: Base) -> None:
        events, marks = [], {}
        stack = list(result.experimental_event_tree())
        while stack:
            event = stack.pop()
            stack.extend(event.children)
            fields = event.extra_fields
            if type(fields).__name__ == "_ExtraFields_Allocation":
                if fields.device.type == "cpu":
                    events.append((event.start_time_ns, fields.alloc_size, fields.ptr))
            elif event.name.startswith(MARK):
                marks[int(event.name[len(MARK):])] = event.start_time_ns
        events.sort(key=lambda e: e[0])
        self.allocated_ptrs = {ptr for _, size, ptr in events if size > 0}
        self._levels_of(events, base(self.allocated_ptrs))
        self._mark_ns = [marks[i] for i in range(self.marks)]
        self._mark_at = [bisect_right(self._times, t) - 1 for t in self._mark_ns]

    def _levels_of(self, events: list[tuple[int, int, int]], counted: Collection[int]) -> None:
        """The level after every (time, size, address) event, in time order. A free counts where the step
        allocated that address or where the step's base counts it (``counted``). The CPU allocator's reporter
        also reports the free of a block allocated during an *earlier* profiled step (its size table outlives
        the session): a previous memory step's garbage that the collector reclaims mid-step. That memory is
        not in the base, so subtracting it took the level below what the step holds, and the tensor tracker's
        figure above the allocator's."""
        level, live, self._times, self._levels = 0, set(), [], []
        for time, size, ptr in events:
            if size > 0:
                live.add(ptr)
            elif ptr in live:
                live.discard(ptr)
            elif ptr not in counted:
                continue
            level += size
            self._times.append(time)
            self._levels.append(level)

    def level_at(self, mark: int) -> int:
        i = self._mark_at[mark]
        return self._levels[i] if i >= 0 else 0

    def _between(self, first: int, last: int) -> slice:
        """The events after mark ``first`` up to mark ``last``."""
        return slice(self._mark_at[first] + 1, self._mark_at[last] + 1)

    def peak(self, first: int, last: int) -> tuple[int, None]:
        """Highest level from mark ``first`` to mark ``last`` (relative to the step's start); no reserve."""
        return max([self.level_at(first), *self._levels[self._between(first, last)]]), None

    def time_at(self, mark: int) -> int:
        return self._mark_ns[mark]

    def series(self, first: int, last: int) -> list[tuple[int, int]]:
        """(ns, level) at mark ``first`` and after every event up to mark ``last``: the levels ``peak`` reads."""
        events = self._between(first, last)
        return [(self.time_at(first), self.level_at(first)), *zip(self._times[events], self._levels[events],
                                                                  strict=True)]


class TrackerOnlyWatch:
    """Marks that measure nothing: the meter then reports the tensor tracker's figures as the peaks."""

    absolute = False
    counts = False  # the meter falls back to the tracker's bytes
    allocated_ptrs: set[int] = set()

    def __init__(self) -> None:
        self.marks = 0

    @contextmanager
    def step(self, base: Base = no_base):
        yield

    def mark(self) -> int:
        self.marks += 1
        return self.marks - 1

    def peak(self, first: int, last: int) -> tuple[int, None]:
        return 0, None

    def series(self, first: int, last: int) -> None:
        """No levels were recorded: no timeline."""
        return None


class CudaAllocatorWatch:
    """Marks on the CUDA caching allocator's peak counters. ``read`` returns (peak allocated, peak
    reserved) since the last ``reset``, ``level`` the bytes allocated now and ``clock`` seconds after the
    device's queued work (so a phase's kernels fall inside its span); all default to ``torch.cuda``'s and can
    be replaced (tests)."""

    absolute = True
    counts = True
    source = "cuda allocator readings at the marks"

    def __init__(self, device: torch.device | None = None, read: Callable[[], tuple[int, int]] | None = None,
                 reset: Callable[[], None] | None = None, level: Callable[[], int] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.read = read or (lambda: (torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)))
        self.reset = reset or (lambda: torch.cuda.reset_peak_memory_stats(device))
        self.level = level or (lambda: torch.cuda.memory_allocated(device))
        self.clock = clock or device_clock(device or torch.device("cuda"))
        self.readings: list[tuple[int, int]] = []  # reading i: the peaks between mark i-1 and mark i
        self.levels: list[int] = []  # level i: the bytes allocated at mark i
        self.times_ns: list[int] = []
        self.allocated_ptrs: set[int] = set()

    @contextmanager
    def step(self, base: Base = no_base):
        """Readings at the marks (``base`` is not needed: the caching allocator's figures are absolute)."""
        self.readings, self.levels, self.times_ns = [], [], []
        self.reset()
        yield

    def mark(self) -> int:
        self.times_ns.append(int(self.clock() * 1e9))
        self.readings.append(self.read())
        self.levels.append(self.level())
        self.reset()
        return len(self.readings) - 1

    def time_at(self, mark: int) -> int:
        return self.times_ns[mark]

    def series(self, first: int, last: int) -> list[tuple[int, int]]:
        """(ns, bytes): the level at every mark from ``first`` to ``last`` and, halfway between two marks, the
        peak reading of the stretch between them (when in it the peak fell is not known)."""
        points = [(self.times_ns[first], self.levels[first])]
        for i in range(first + 1, last + 1):
            points += [((self.times_ns[i - 1] + self.times_ns[i]) // 2, self.readings[i][0]),
                       (self.times_ns[i], self.levels[i])]
        return points

    def peak(self, first: int, last: int) -> tuple[int, int]:
        """Highest allocated and reserved bytes from mark ``first`` to mark ``last``. The reading at
        ``first`` covers the time before it; after its reset the counter starts at what was then live,
        so the readings after ``first`` cover every moment of the interval."""
        span = self.readings[first + 1 : last + 1] or [self.readings[last]]
        return max(r[0] for r in span), max(r[1] for r in span)


def allocator_watch(device: torch.device, distributed: bool = False):
    """The watch for ``device``'s allocator (none for the CPU under torchrun, see ``TrackerOnlyWatch``)."""
    if device.type == "cuda":
        return CudaAllocatorWatch(device)
    return TrackerOnlyWatch() if distributed else CpuAllocatorWatch()


def backend_name(device: torch.device, distributed: bool = False) -> str:
    """What ``memory_backend`` says the peaks were measured by."""
    if device.type == "cuda":
        return "cuda-allocator"
    return "cpu-tensor-tracker" if distributed else "cpu-allocator"

