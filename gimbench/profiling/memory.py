"""The memory meter: tensor-level accounting per (module, phase), plus the CUDA allocator's peaks
and the process's peak RSS as cross-checks. Used only on memory-tracked steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from gimbench.profiling.meter import IntervalMeter, Key
from gimbench.profiling.system import reset_rss_peak, rss_peak_bytes
from gimbench.profiling.tracker import Snapshot, TensorTracker


@dataclass
class Interval:
    """Memory of one (module, phase): the tracker's peak and, on CUDA, the allocator's."""

    tracked: Snapshot
    allocator_peak: int | None
    reserved_peak: int | None  # the caching allocator's reserved bytes (tensors + cached free blocks)


@dataclass
class StepMemory:
    """One memory-tracked step."""

    resident: int  # tracked bytes live when the step began
    peak: Snapshot  # the tracker's step peak
    allocator_peak: int | None
    rss_peak: int | None
    reserved_peak: int | None = None
    intervals: dict[Key, Interval] = field(default_factory=dict)


class MemoryMeter(IntervalMeter):
    """Tracks every tensor during a step; on CUDA also resets the allocator peak per interval."""

    def __init__(self, network: torch.nn.Module, optimizers: list, device: torch.device) -> None:
        self.network, self.optimizers = network, optimizers
        self.cuda = device.type == "cuda"
        self.steps: list[StepMemory] = []
        self.tracker = TensorTracker()

    def _begin(self) -> None:
        self.tracker.reset_interval()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def _end(self, key: Key) -> None:
        if key[1] == "optimizer":
            self._register_optimizer_state()
        peak = self.tracker.interval_peak.copy()
        allocator = torch.cuda.max_memory_allocated() if self.cuda else None
        reserved = torch.cuda.max_memory_reserved() if self.cuda else None
        old = self.steps[-1].intervals.get(key)
        if old is None or peak.live > old.tracked.live:
            self.steps[-1].intervals[key] = Interval(peak, allocator, reserved)
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
        self.tracker = TensorTracker()
        hooks = self._register_resident()
        record = StepMemory(self.tracker.now.live, Snapshot(), None, None)
        self.steps.append(record)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        reset_rss_peak()
        try:
            with self.tracker, torch.autograd.graph.saved_tensors_hooks(self.tracker.saved, lambda t: t):
                yield
        finally:
            for hook in hooks:
                hook.remove()
            self.tracker.close()
        record.peak = self.tracker.step_peak.copy()
        record.rss_peak = rss_peak_bytes()
        if self.cuda:
            record.allocator_peak = max((i.allocator_peak for i in record.intervals.values()), default=0)
            record.reserved_peak = max((i.reserved_peak for i in record.intervals.values()), default=0)
