"""Real training steps on demand, outside a run: the shared core of the benchmark suite and the
batch-size search. It builds the network, data, strategy and trainer exactly as ``gimbench.runs.run`` does
and measures memory with the run's own meters: a warm-up cycle first (every module trains once, so
every optimizer's state exists), then one cycle of memory-tracked steps.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import torch

from gimbench.config import RunConfig, module_count
from gimbench.profiling.floor import alone_peaks
from gimbench.profiling.meter import NULL_METER, Meter
from gimbench.profiling.profile import Profiler
from gimbench.runs.build import build
from gimbench.strategies import spec_of
from gimbench.trainer import Trainer


class Stepper:
    """The trainer of a resolved config, stepped on demand.

    The config's ``steps`` is set to one schedule cycle and step numbers wrap around it, so a
    ``sequential`` run trains module ``i % depth`` at its i-th step, and ``cycle`` steps visit every
    module once.
    """

    def __init__(self, cfg: RunConfig) -> None:
        self.cycle = spec_of(cfg).cycle(module_count(cfg))
        self.cfg = dataclasses.replace(cfg, steps=self.cycle)
        parts = build(self.cfg)
        self.network, self.device = parts.network, parts.device
        self.meter: Meter = NULL_METER  # what the next step reports to
        floor = partial(alone_peaks, parts.strategy.train_alone, self.network, parts.optimizers, device=self.device,
                        cast=parts.strategy.precision.cast)
        self.profiler = Profiler(["memory"] * self.cycle, self.network, parts.optimizers, self.device,
                                 measure_floor=floor)
        self.trainer = Trainer(parts, self.cfg.batch_size, self.cfg.seed, meter_for=lambda step: self.meter,
                               after_batch=self._after_batch)
        self.tracking = False  # the steps report to the memory meter
        self.floor = False  # and after the cycle's last one, the profiler measures the greedy floor
        self.taken = 0

    def _after_batch(self, step: int, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.tracking and self.floor:
            self.profiler.after_step(step, x, y)

    def step(self, meter: Meter = NULL_METER) -> None:
        """One real training step (batch, strategy step, device sync), reported to ``meter``."""
        self.meter = meter
        self.trainer.rewind(self.taken % self.cycle)  # the step number the strategy sees
        self.trainer.fit(self.trainer.step + 1)
        self.taken += 1

    def warm_up(self) -> None:
        """One schedule cycle of unmeasured steps: lazy initialisation, and every module's optimizer state."""
        for _ in range(self.cycle):
            self.step()

    def track_memory(self, floor: bool = False) -> None:
        """One schedule cycle of memory-tracked steps (the run's allocator watch and tensor tracker); with
        ``floor``, then each module trained alone on the last step's batch (the greedy floor)."""
        self.tracking, self.floor = True, floor
        try:
            for _ in range(self.cycle):
                self.step(self.profiler.memory)
        finally:
            self.tracking = False

    @property
    def backend(self) -> str:
        """The memory measurement behind ``step_peak`` ("cpu-allocator" or "cuda-allocator")."""
        return self.profiler.backend

    def step_memory(self) -> dict:
        """Step-level memory of the tracked steps, as in results.json's ``step`` block."""
        return self.profiler.step_memory()

    def step_peak(self) -> int:
        """The highest allocator step peak over the tracked steps (every module's under ``sequential``)."""
        return max(s.allocator_peak for s in self.profiler.memory.steps)

    def module_peaks(self) -> list[int | None]:
        """Each module's peak over the tracked steps (None for a module that never ran)."""
        return [self.profiler.module_memory(k).get("memory", {}).get("peak_bytes") for k in range(len(self.network))]
