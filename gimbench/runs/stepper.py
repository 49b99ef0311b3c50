"""Real training steps on demand, outside a run: the shared core of the benchmark suite and the
batch-size search. It builds the network, data, strategy and trainer exactly as ``gimbench.runs.run`` does
and measures memory with the run's own meters: a warm-up cycle first (every module trains once, so
every optimizer's state exists), then one cycle of memory-tracked steps.
"""

from __future__ import annotations

import dataclasses

import torch

from gimbench.config import RunConfig
from gimbench.data import make_source
from gimbench.profiling.meter import NULL_METER, Meter
from gimbench.profiling.profile import Profiler
from gimbench.runs.run import network_for
from gimbench.strategies import make_strategy
from gimbench.strategies.alone import alone_peaks
from gimbench.trainer import Trainer


def schedule_cycle(cfg: RunConfig) -> int:
    """Steps after which the strategy's schedule repeats: ``sequential`` GIM trains one module per
    step of a cycle of ``depth`` steps, every other method does the same work every step."""
    return cfg.depth if (cfg.model, cfg.gim_mode) == ("gim", "sequential") else 1


class Stepper:
    """The trainer of a resolved config, stepped on demand.

    The config's ``steps`` is set to one schedule cycle and step numbers wrap around it, so a
    ``sequential`` run trains module ``i % depth`` at its i-th step, and ``cycle`` steps visit every
    module once.
    """

    def __init__(self, cfg: RunConfig) -> None:
        self.cycle = schedule_cycle(cfg)
        self.cfg = dataclasses.replace(cfg, steps=self.cycle)
        strategy = make_strategy(self.cfg)
        source = make_source(self.cfg, labelled=strategy.needs_labels)
        self.network = network_for(self.cfg, strategy, source.num_classes)
        self.device = torch.device(self.cfg.device)
        torch.use_deterministic_algorithms(self.device.type == "cpu")  # as in gimbench.runs.run: same kernels
        self.trainer = Trainer(self.network, strategy, source, self.device, self.cfg.batch_size, self.cfg.seed)
        self.isolate = lambda x, y: alone_peaks(strategy, self.network, self.trainer.optimizers, x, y, self.device)
        self.profiler = Profiler(["memory"] * self.cycle, self.network, self.trainer.optimizers, self.device)
        self.taken = 0

    def step(self, meter: Meter = NULL_METER) -> None:
        """One real training step (batch, strategy step, device sync), reported to ``meter``."""
        self.trainer.meter_for = lambda step: meter
        self.trainer.step = self.taken % self.cycle  # the step number the strategy sees
        self.trainer.fit(self.trainer.step + 1)
        self.taken += 1

    def warm_up(self) -> None:
        """One schedule cycle of unmeasured steps: lazy initialisation, and every module's optimizer state."""
        for _ in range(self.cycle):
            self.step()

    def track_memory(self, floor: bool = False) -> None:
        """One schedule cycle of memory-tracked steps (the run's allocator watch and tensor tracker); with
        ``floor``, then each module trained alone on the last step's batch (the greedy floor)."""
        self.profiler.isolate = self.isolate if floor else None
        self.trainer.after_batch = self.profiler.after_step
        try:
            for _ in range(self.cycle):
                self.step(self.profiler.memory)
        finally:
            self.trainer.after_batch = lambda step, x, y: None

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
