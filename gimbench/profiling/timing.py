"""Per-(module, phase) timers: CUDA events on a GPU, ``perf_counter`` on the CPU, one interface."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from gimbench.profiling.meter import IntervalMeter, Key


class TimingMeter(IntervalMeter):
    """Collects, per timed step, the seconds spent in each (module, phase).

    On CUDA, intervals are bracketed by events on the current stream and resolved after one
    synchronisation at the end of the step, so timing adds no synchronisation inside the step.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.steps: list[dict[Key, float]] = []
        self._intervals: list[tuple[Key, object, object]] = []
        self._start: object = None

    def _now(self) -> object:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _begin(self) -> None:
        self._start = self._now()

    def _end(self, key: Key) -> None:
        self._intervals.append((key, self._start, self._now()))

    def _seconds(self, start: object, end: object) -> float:
        return start.elapsed_time(end) / 1e3 if self.cuda else end - start

    @contextmanager
    def step(self) -> Iterator[None]:
        self._intervals = []
        yield
        if self.cuda:
            torch.cuda.synchronize()
        seconds: dict[Key, float] = {}
        for key, start, end in self._intervals:
            seconds[key] = seconds.get(key, 0.0) + self._seconds(start, end)
        self.steps.append(seconds)

