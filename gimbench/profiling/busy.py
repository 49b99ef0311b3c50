"""Seconds a process spends computing in each step, and inside point-to-point transfers; the rest of the step
it waits on its peers or runs the step's bookkeeping."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch

from gimbench.device import clock, sync


class BusyClock:
    """Seconds this rank spends computing in each step (``busy``) and inside point-to-point sends, receives
    and their waits (``transfer``); strategies that spread modules over processes drive it.

    Time inside ``transfer`` is what the rank blocks on a message: the transfer itself and, for a receive,
    however late the peer sent it; gloo's waits do not tell the two apart (``gimbench.distributed.links``
    bounds the transfer with a ping of the same size). ``message`` counts each step's messages per peer and
    size, ``aside`` books time spent measuring the links (the ping), which belongs to no step's work.
    """

    def __init__(self, device: torch.device) -> None:
        self.sync = sync(device)  # waits for the device's queued work
        self.now = clock(device)  # reads after the device's queued work is done, so a difference covers it
        self.steps: list[float] = []
        self.transfers: list[float] = []
        self.messages: list[Counter[tuple[int, int]]] = []  # per step: (peer, bytes) -> messages sent or received
        self.aside: list[float] = []
        self.links: dict[int, dict] = {}  # peer -> the ping's figures (see gimbench.distributed.links)
        self.transfers_measured = False  # set by a strategy that times its transfers

    def begin_step(self) -> None:
        self.steps.append(0.0)
        self.transfers.append(0.0)
        self.messages.append(Counter())
        self.aside.append(0.0)

    @contextmanager
    def _timed(self, seconds: list[float]) -> Iterator[None]:
        start = self.now()
        try:
            yield
        finally:
            seconds[-1] += self.now() - start

    def busy(self) -> AbstractContextManager[None]:
        return self._timed(self.steps)

    def transfer(self) -> AbstractContextManager[None]:
        """Around a send, a receive, or a wait on one (on CUDA the syncs put NCCL's queued wait inside it)."""
        return self._timed(self.transfers)

    def message(self, peer: int, nbytes: int) -> None:
        """One message of ``nbytes`` to or from ``peer`` in this step."""
        if self.messages:
            self.messages[-1][(peer, nbytes)] += 1

    def set_aside(self, seconds: float) -> None:
        if self.aside:
            self.aside[-1] += seconds
