"""The one training loop every strategy runs in. It returns data and never prints."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gimbench.data import Source
from gimbench.models import Network
from gimbench.profiling.meter import NULL_METER, Meter
from gimbench.strategies import Strategy


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


def device_sync(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work; a no-op on the CPU."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@dataclass
class Trainer:
    """Runs ``steps`` steps of ``strategy`` on batches from ``source``.

    ``meter_for(step)`` picks the meter each step reports to (the null meter unless profiling
    asks otherwise), so measurement never runs on steps it does not measure.
    """

    network: Network
    strategy: Strategy
    source: Source
    device: torch.device
    batch_size: int
    seed: int
    meter_for: Callable[[int], Meter] = lambda step: NULL_METER
    on_step: Callable[[StepRecord], None] = lambda record: None

    def __post_init__(self) -> None:
        self.network.to(self.device).train()
        self.optimizers = self.strategy.make_optimizers(self.network)

    def fit(self, steps: int, first: int = 0) -> History:
        """Train for ``steps`` steps, numbered from ``first`` (a caller stepping on demand continues
        the count), and return what was observed."""
        optimizers = self.optimizers
        generator = torch.Generator().manual_seed(self.seed + first)
        sync = device_sync(self.device)
        history = History()
        for step in range(first, first + steps):
            t0 = time.perf_counter()
            x, y = self.source.batch(self.batch_size, generator)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            sync()
            t1 = time.perf_counter()
            meter = self.meter_for(step)
            with meter.step():
                losses = self.strategy.step(self.network, optimizers, x, meter, step, labels=y)
            sync()
            t2 = time.perf_counter()
            values = [None if loss is None else float(loss) for loss in losses]
            history.losses.append(values)
            history.seconds.append(t2 - t1)
            history.data_seconds.append(t1 - t0)
            self.on_step(StepRecord(step, values, t2 - t1, t1 - t0, self.batch_size))
        return history
