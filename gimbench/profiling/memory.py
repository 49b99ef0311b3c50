"""The memory meter: allocator-level peaks per (module, phase) and per step, with the tensor tracker's
categories beside them and the process's peak RSS as a cross-check. Used only on memory-tracked steps.

Every interval gets two figures of the same moments: the allocator's peak (every byte handed out,
kernels' scratch included; see ``allocator``) and the tracker's (tensor storages by category). The
allocator's is the peak; what it held beyond the tracked tensors is ``untracked`` (workspace). An
interval seen several times in a step (the slices of one backward booked to the same module) keeps
the highest of each figure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from gimbench.profiling.allocator import allocator_watch
from gimbench.profiling.meter import IntervalMeter, Key
from gimbench.profiling.nvml import NvmlSampler
from gimbench.profiling.system import reset_rss_peak, rss_peak_bytes
from gimbench.profiling.timeline import Timeline, timeline
from gimbench.profiling.tracker import Snapshot, TensorTracker


@dataclass
class Interval:
    """Memory of one (module, phase): the tracker's peak and the allocator's."""

    tracked: Snapshot
    allocator_peak: int | None
    reserved_peak: int | None  # CUDA: the caching allocator's reserved bytes (tensors + cached free blocks)

    def merge(self, other: Interval) -> Interval:
        """The highest of each figure over two visits of the same (module, phase)."""
        tracked = other.tracked if other.tracked.live > self.tracked.live else self.tracked
        return Interval(tracked, _max(self.allocator_peak, other.allocator_peak),
                        _max(self.reserved_peak, other.reserved_peak))


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass
class StepMemory:
    """One memory-tracked step."""

    resident: int  # tracked bytes live when the step began
    peak: Snapshot  # the tracker's step peak
    allocator_peak: int | None
    rss_peak: int | None
    reserved_peak: int | None = None
    intervals: dict[Key, Interval] = field(default_factory=dict)
    preexisting: int = 0  # bytes of storages the step used that were allocated before it (the batch)
    timeline: Timeline | None = None  # allocated bytes over the step (None where the watch records no levels)


class MemoryMeter(IntervalMeter):
    """Tracks every tensor and the allocator during a step, per (module, phase) interval.

    ``watch`` is the allocator watch (``allocator_watch(device)`` unless given) and ``nvml`` a
    sampler of the device-wide used memory (CUDA only)."""

    def __init__(self, network: torch.nn.Module, optimizers: list, device: torch.device, watch=None,
                 nvml: NvmlSampler | None = None, distributed: bool = False) -> None:
        self.network, self.optimizers, self.device = network, optimizers, device
        self.watch = watch or allocator_watch(device, distributed)
        self.nvml = nvml if nvml is not None else NvmlSampler(device)
        self.steps: list[StepMemory] = []
        self.tracker = TensorTracker(device)
        self._pending: list[tuple[Key, Snapshot, int, int]] = []
        self._open = 0

    def _begin(self) -> None:
        self.tracker.reset_interval()
        self._open = self.watch.mark()

    def _end(self, key: Key) -> None:
        if key[1] == "optimizer":
            self._register_optimizer_state()
        close = self.watch.mark()
        self._pending.append((key, self.tracker.interval_peak.copy(), self._open, close))
        self.tracker.module = -1

    @contextmanager
    def phase(self, module: int, name: str) -> Iterator[None]:
        self.tracker.module = module  # activations saved now belong to this module
        with super().phase(module, name):
            yield

    def _register_optimizer_state(self) -> None:
        for optimizer in self.optimizers:
            for state in (optimizer.state.values() if optimizer is not None else ()):
                for value in state.values():
                    if isinstance(value, torch.Tensor):
                        self.tracker.classify(value, "optimizer")

    def _register_resident(self) -> list:
        hooks = []
        for k in range(len(self.network)):
            for p in self.network.owned_parameters(k):
                self.tracker.classify(p, "parameter")
                if p.grad is not None:
                    self.tracker.classify(p.grad, "gradient", owner=k)
                hooks.append(p.register_post_accumulate_grad_hook(
                    lambda q, k=k: self.tracker.classify(q.grad, "gradient", owner=k)))
        self._register_optimizer_state()
        return hooks

    @contextmanager
    def step(self) -> Iterator[None]:
        """A memory-tracked step. A step that raises (out of memory) is still booked, up to where it failed:
        those are the figures measured so far."""
        self.tracker = TensorTracker(self.device)
        hooks = self._register_resident()
        self.tracker.watching = True
        record = StepMemory(self.tracker.now.live, Snapshot(), None, None)
        self._pending = []
        marks: list[int] = []
        reset_rss_peak()
        try:
            with self.nvml.sampling(), self.watch.step(self._base):
                marks.append(self.watch.mark())
                try:
                    with self.tracker, torch.autograd.graph.saved_tensors_hooks(self.tracker.saved, lambda t: t):
                        yield
                finally:
                    marks.append(self.watch.mark())
        finally:
            for hook in hooks:
                hook.remove()
            self.tracker.close()
            if len(marks) == 2:
                self._book(record, *marks)

    def _book(self, record: StepMemory, first: int, last: int) -> None:
        """Turn the step's marks and the tracker's snapshots into its record."""
        record.peak = self.tracker.step_peak.copy()
        record.rss_peak = rss_peak_bytes()
        record.preexisting = self._preexisting()
        offset = 0 if self.watch.absolute else record.resident + record.preexisting
        for key, tracked, begin, end in self._pending:
            allocated, reserved = self.watch.peak(begin, end)
            interval = Interval(tracked, offset + allocated if self.watch.counts else tracked.live, reserved)
            old = record.intervals.get(key)
            record.intervals[key] = interval if old is None else old.merge(interval)
        allocated, reserved = self.watch.peak(first, last)
        record.allocator_peak = offset + allocated if self.watch.counts else record.peak.live
        record.reserved_peak = reserved
        record.timeline = self._timeline(record, first, last, offset)
        self.steps.append(record)

    def _timeline(self, record: StepMemory, first: int, last: int, offset: int) -> Timeline | None:
        """The step's levels between its first and last mark as the watch recorded them, with every interval."""
        series = self.watch.series(first, last)
        if series is None:
            return None
        at = self.watch.time_at
        intervals = [(key, at(begin), at(end)) for key, _, begin, end in self._pending]
        return timeline(series, intervals, offset, record.resident, self.watch.source, at(last))

    def _preexisting(self) -> int:
        """Bytes of the storages the tracker first met during the step that the allocator did not hand out
        during it (the input batch, a tensor made before the step): live throughout, so part of the base."""
        if self.watch.absolute or not self.watch.counts:
            return 0
        return sum(self._met_before(self.watch.allocated_ptrs).values())

    def _base(self, allocated: set[int]) -> set[int]:
        """The addresses of the memory made before the step that its base counts: the resident tensors and the
        storages ``_preexisting`` adds (``allocated``: the addresses the allocator handed out during the step)."""
        return self.tracker.resident_addresses | self._met_before(allocated).keys()

    def _met_before(self, allocated: set[int]) -> dict[int, int]:
        """Address -> bytes of the storages the tracker first met during the step that the step did not
        allocate (``allocated``: the addresses the allocator handed out during it)."""
        return {ptr: size for ptr, size in self.tracker.first_seen.values() if ptr not in allocated}
