"""The one training loop every strategy runs in. It returns data and never prints."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gimbench.data import Source
from gimbench.data.loading import BatchStream
from gimbench.device import clock
from gimbench.models import Network
from gimbench.profiling.meter import NULL_METER, Meter
from gimbench.strategies import Strategy


class NonFiniteLoss(Exception):
    """A module's loss became NaN or infinite."""

    def __init__(self, step: int, module: int, value: float) -> None:
        super().__init__(f"loss {value} in module {module} at step {step}")
        self.step, self.module, self.value = step, module, value


@dataclass(frozen=True)
class StepRecord:
    """What one training step did; handed to the progress callback."""

    step: int
    losses: list[float | None]  # per module; None where the strategy computed no loss
    seconds: float  # the strategy's step, after a device sync
    data_seconds: float  # waiting for and moving the batch
    batch_size: int


@dataclass
class History:
    """Everything the loop observed, one entry per step."""

    losses: list[list[float | None]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    data_seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Parts:
    """What a run trains, built once from its config (``gimbench.runs.build``); under torchrun the engine of the
    run's mode builds this rank's (slices the data and wraps the strategy, or builds only this rank's modules and
    its strategy for them) before the ``Trainer`` is made."""

    network: Network
    strategy: Strategy
    source: Source
    optimizers: list  # one per module; None for a module with nothing to train
    device: torch.device


@dataclass
class Trainer:
    """Runs ``steps`` steps of the parts' strategy on batches from their source.

    ``meter_for(step)`` picks the meter each step reports to (the null meter unless profiling
    asks otherwise), so measurement never runs on steps it does not measure; ``after_batch`` hears
    each step's batch once the step is done (profiling measures the greedy floor on it). ``step``, ``generator``
    (the data position) and ``history`` carry over between ``fit`` calls and through checkpoints.
    Everything it calls is given at construction; nothing outside changes it afterwards.
    """

    parts: Parts
    batch_size: int
    seed: int
    meter_for: Callable[[int], Meter] = lambda step: NULL_METER
    on_step: Callable[[StepRecord], None] = lambda record: None
    workers: int = 0  # DataLoader worker processes (see gimbench.data.loading)
    should_stop: Callable[[], bool] = lambda: False  # checked between steps, never inside one
    after_batch: Callable[[int, torch.Tensor, torch.Tensor], None] = lambda step, x, y: None  # (step, batch)

    def __post_init__(self) -> None:
        self.network.train()
        self.generator = torch.Generator().manual_seed(self.seed)
        self.history = History()
        self.step = 0  # steps done

    @property
    def network(self) -> Network:
        return self.parts.network

    @property
    def strategy(self) -> Strategy:
        return self.parts.strategy

    @property
    def source(self) -> Source:
        return self.parts.source

    @property
    def optimizers(self) -> list:
        return self.parts.optimizers

    @property
    def device(self) -> torch.device:
        return self.parts.device

    def restore(self, step: int, history: History, data_position: torch.Tensor) -> None:
        """Continue from a checkpoint: ``step`` steps done, what they observed, the data generator's state."""
        self.step, self.history = step, history
        self.generator.set_state(data_position)

    def rewind(self, step: int) -> None:
        """Make ``step`` the next step to run (the benchmark stepper cycles through one schedule)."""
        self.step = step

    def fit(self, steps: int) -> History:
        """Train until ``steps`` steps are done or ``should_stop()``; returns what was observed.

        Raises:
            NonFiniteLoss: when a module's loss is NaN or infinite (that step is not recorded).
        """
        pin = self.device.type == "cuda"
        stream = BatchStream(self.source, self.batch_size, self.seed, self.workers, pin=pin,
                             generator=self.generator, start=self.step)
        with stream as batches:
            return self._fit(steps, batches)

    def _fit(self, steps: int, batches: BatchStream) -> History:
        optimizers, history = self.optimizers, self.history
        now = clock(self.device)  # reads after the device's queued work is done
        while self.step < steps and not self.should_stop():
            step = self.step
            t0 = now()
            x, y = next(batches)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            t1 = now()
            meter = self.meter_for(step)
            with meter.step():
                losses = self.strategy.step(self.network, optimizers, x, meter, step, labels=y)
            t2 = now()
            seconds, data_seconds = t2 - t1, t1 - t0
            values = [None if loss is None else float(loss) for loss in losses]
            for k, value in enumerate(values):
                if value is not None and not math.isfinite(value):
                    raise NonFiniteLoss(step, k, value)
            self.after_batch(step, x, y)
            history.losses.append(values)
            history.seconds.append(seconds)
            history.data_seconds.append(data_seconds)
            self.step = step + 1
            self.on_step(StepRecord(step, values, seconds, data_seconds, self.batch_size))
        return history
