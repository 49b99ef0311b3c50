"""Seconds a process spends computing in each step; the rest of the step it waits on its peers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from gimbench.device import clock


class BusyClock:
    """Strategies that spread modules over processes time their own compute with ``busy()``; the share of the
    trainer's step time outside it is the time the process waited."""

    def __init__(self, device: torch.device) -> None:
        self.now = clock(device)  # waits for the device's queued work, so a reading covers it
        self.steps: list[float] = []

    def begin_step(self) -> None:
        self.steps.append(0.0)

    @contextmanager
    def busy(self) -> Iterator[None]:
        start = self.now()
        try:
            yield
        finally:
            self.steps[-1] += self.now() - start
