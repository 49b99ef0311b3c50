"""Module-parallel GIM: each rank trains its own contiguous group of modules on what the rank below sends it.

Rank r receives its input activations from rank r-1 (rank 0 reads the data), trains each of its modules
exactly as ``--gim-mode per-module`` does (forward, local loss, backward, optimizer step, detach) and sends
the detached output on to rank r+1 with point-to-point ``isend``/``irecv``. Nothing travels backwards: no
rank ever waits for a gradient. Between neighbours at most ``--max-inflight K`` batches are in flight: the
receiver keeps receives posted for its next K batches, and the sender waits on its oldest send once K are
outstanding.

Every send, receive and wait counts as the rank's transfer time (``BusyClock.transfer``), and after the first
message on each link its two ends ping each other with a message of the activation's size, once, to
estimate how much of that time is the transfer itself (``gimbench.distributed.links``).

The first message on each link is a small header with the activation's shape. Every later message is one
batch's activation followed by two numbers: the last step rank 0 will run, and the signal that stopped it
(0: none). Stopping needs no collective (which would make every rank wait for every other at each step):
rank 0 decides, and its decision travels down the pipeline with the data. When rank 0 sees a stop request
at step s it runs K more steps, so that no rank has posted a receive for a batch that will never be sent.
A rank r > 0 that receives a signal posts it in torch.distributed's key-value store, where rank 0 looks
before each step without waiting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch
import torch.distributed as dist

from gimbench.distributed.links import ping_links
from gimbench.distributed.stages import SpreadStrategy
from gimbench.distributed.world import World
from gimbench.models import Network
from gimbench.profiling.busy import BusyClock
from gimbench.profiling.meter import Meter
from gimbench.strategies import MethodSpec
from gimbench.strategies.base import train_module

MAX_DIMS = 8  # the header holds the number of dimensions and up to this many sizes
TAIL = 2  # numbers after each activation: the last step, the stopping signal


class Outbox:
    """Sends this rank's outputs to rank ``dst``, waiting on the oldest send once ``inflight`` are outstanding."""

    def __init__(self, dst: int, inflight: int, clock: BusyClock) -> None:
        self.dst, self.inflight, self.clock = dst, inflight, clock
        self.shape: torch.Size | None = None
        self.pending: deque[tuple[torch.Tensor, dist.Work]] = deque()  # a tensor must live until its send is done

    def put(self, activation: torch.Tensor, last: int, signal: int) -> None:
        """Send one batch's ``activation``, with the last step and the stopping signal as rank 0 decided them."""
        if activation.dtype != torch.float32:  # the tail's step numbers are exact in float32 up to 2**24
            raise RuntimeError(f"module-parallel sends float32 activations, got {activation.dtype}")
        if self.shape is None:
            self.shape = activation.shape
            header = torch.zeros(MAX_DIMS + 1, dtype=torch.int64, device=activation.device)
            header[0] = activation.dim()
            header[1 : 1 + activation.dim()] = torch.tensor(activation.shape)
            with self.clock.transfer():
                dist.send(header, self.dst)
            ping_links(self.clock, self.dst - 1, {self.dst: 4 * (activation.numel() + TAIL)}, activation.device)
        elif activation.shape != self.shape:
            raise RuntimeError(f"module-parallel activations changed shape: {tuple(activation.shape)} after "
                               f"{tuple(self.shape)}")
        message = torch.cat([activation.flatten(), activation.new_tensor([last, signal])])
        self.clock.message(self.dst, message.numel() * message.element_size())
        with self.clock.transfer():
            while len(self.pending) >= self.inflight:
                self.pending.popleft()[1].wait()
            self.pending.append((message, dist.isend(message, self.dst)))

    def flush(self) -> None:
        """Wait until every send has been received."""
        with self.clock.transfer():
            while self.pending:
                self.pending.popleft()[1].wait()


class Inbox:
    """Receives rank ``src``'s outputs, keeping receives posted for the next ``inflight`` steps (never past the
    last step the sender announced)."""

    def __init__(self, src: int, inflight: int, step: int, last: int, device: torch.device, clock: BusyClock) -> None:
        self.src, self.inflight, self.device, self.clock = src, inflight, device, clock
        self.next_post, self.last, self.signal = step, last, 0
        header = torch.zeros(MAX_DIMS + 1, dtype=torch.int64, device=device)
        with clock.transfer():
            dist.recv(header, src)
        self.shape = tuple(header[1 : 1 + int(header[0])].tolist())
        self.size = int(torch.Size(self.shape).numel())
        ping_links(clock, src + 1, {src: 4 * (self.size + TAIL)}, device)
        self.posted: deque[tuple[torch.Tensor, dist.Work]] = deque()

    def take(self, step: int) -> torch.Tensor:
        """The activation of ``step`` (waits until it has arrived); updates ``last`` and ``signal``."""
        with self.clock.transfer():
            while self.next_post < step + self.inflight and self.next_post <= self.last:
                buffer = torch.empty(self.size + TAIL, device=self.device)
                self.posted.append((buffer, dist.irecv(buffer, self.src)))
                self.next_post += 1
            message, work = self.posted.popleft()
            work.wait()
        self.clock.message(self.src, message.numel() * message.element_size())
        self.last, self.signal = int(message[-2]), int(message[-1])
        return message[: self.size].view(self.shape)


class StopBoard:
    """Where a rank r > 0 posts the signal it received, for rank 0 to see at its next step: a key in the
    key-value store torchrun's rendezvous set up (``torch.distributed``'s own), read without waiting."""

    KEY = "gimbench/module-parallel/stop"

    def __init__(self) -> None:
        self.store = dist.distributed_c10d._get_default_store()
        self.posted = False

    def post(self, signal: int) -> None:
        if not self.posted:
            self.store.set(self.KEY, str(signal))
            self.posted = True

    def read(self) -> int:
        """A signal some rank posted, 0 if none has."""
        return int(self.store.get(self.KEY)) if self.store.check([self.KEY]) else 0


class ModuleParallel(SpreadStrategy):
    """GIM with this rank's modules only (``--gim-mode module-parallel``); the rest of the network lives on the
    other ranks.

    ``local_stop`` (set by the run) is the signal this process received (0: none); rank 0 stops the run on its
    own or on one another rank reported.
    """

    def __init__(self, cfg, spec: MethodSpec, world: World, groups: list[list[int]],
                 costs: list[float] | None = None) -> None:
        super().__init__(cfg, spec, world, groups, costs)
        self.inbox: Inbox | None = None
        self.board: StopBoard | None = None
        self.outbox = (Outbox(self.world.rank + 1, cfg.max_inflight, self.clock)
                       if self.world.rank + 1 < self.world.size else None)
        self.clock.transfers_measured = True
        self.local_stop: Callable[[], int] = lambda: 0  # the signal number this process received, 0 for none
        self.next_step, self.last, self.signal = 0, cfg.steps - 1, 0

    def listen(self, local_stop: Callable[[], int]) -> None:
        """Where to read the signal number this process received (0 for none) before each step."""
        self.local_stop = local_stop

    def should_stop(self) -> bool:
        """Whether the step the trainer is about to run is past the last one rank 0 decided to run."""
        return self.next_step > self.last

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        self.clock.begin_step()
        if self.board is None:
            self.board = StopBoard()
        h = self._input(x, step)
        losses: list[torch.Tensor | None] = [None] * len(network)
        modes = self.local_grads(network)
        for k in self.owned:
            with self.clock.busy():
                h, losses[k] = train_module(network, k, h, optimizers[k], meter, labels, modes[k])
        if self.outbox is not None:
            self.outbox.put(h, self.last, self.signal)
            if step == self.last:
                self.outbox.flush()
        self.next_step = step + 1
        return losses

    def _input(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Rank 0: the batch, after deciding whether to stop soon; other ranks: what the rank below sent."""
        if self.world.rank == 0:
            if not self.signal and (signal := self.local_stop() or self.board.read()):
                self.signal, self.last = signal, min(self.last, step + self.cfg.max_inflight)
            return x
        if signal := self.local_stop():
            self.board.post(signal)
        if self.inbox is None:
            self.inbox = Inbox(self.world.rank - 1, self.cfg.max_inflight, step, self.last, x.device, self.clock)
        h = self.inbox.take(step)
        self.last, self.signal = self.inbox.last, self.inbox.signal
        return h

