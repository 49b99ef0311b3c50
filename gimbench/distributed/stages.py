"""Which rank holds which modules when modules are spread over ranks, and putting the network back together.

Module-parallel GIM and pipelined CPC split the encoder the same way: rank r holds one contiguous group of
modules (with their heads). Every rank builds the whole network from the seed, as a single process does, so
the initial parameters are identical; then it keeps only its own modules and frees the others. At the end
rank 0 receives every other rank's modules and holds the whole trained network again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

from gimbench.distributed.world import World, gather_to_main, world_from_env
from gimbench.models import Network
from gimbench.strategies.base import Strategy


def module_groups(depth: int, ranks: int) -> list[list[int]]:
    """``depth`` module indices in ``ranks`` contiguous groups whose sizes differ by at most one (larger first)."""
    base, extra = divmod(depth, ranks)
    groups, start = [], 0
    for r in range(ranks):
        size = base + (r < extra)
        groups.append(list(range(start, start + size)))
        start += size
    return groups


class Vacant(nn.Module):
    """Stands in for a module another rank holds: no parameters, and running it is a bug."""

    def forward(self, *args: object) -> torch.Tensor:
        raise RuntimeError("this module lives on another rank")


def keep_only(network: Network, owned: list[int]) -> Network:
    """Free every module (and head) outside ``owned``; module indices and names stay as they were."""
    for k in range(len(network)):
        if k not in owned:
            network.encoder[k] = Vacant()
            if network.head(k) is not None:
                del network.heads[str(k)]
    return network


def owned_state(network: Network, owned: list[int]) -> dict[str, torch.Tensor]:
    """The state (parameters and the heads' generator states) of the modules in ``owned``, on the CPU."""
    prefixes = tuple(f"{part}.{k}." for k in owned for part in ("encoder", "heads"))
    return {name: value.detach().cpu() if isinstance(value, torch.Tensor) else value
            for name, value in network.state_dict().items() if name.startswith(prefixes)}


def reassemble(world: World, network: Network, owned: list[int], full: Network | None) -> Network | None:
    """On rank 0, ``full`` (a freshly built whole network) loaded with every rank's trained modules; ``None`` on
    other ranks. A collective: every rank calls it."""
    parts = gather_to_main(world, owned_state(network, owned))
    if parts is None:
        return None
    state = {name: value for part in parts for name, value in part.items()}
    full.load_state_dict(state)
    return full


class BusyClock:
    """Seconds this rank spends computing in each step (``busy``) and inside point-to-point sends, receives
    and their waits (``transfer``); the rest of the step it waits on its peers or runs the step's bookkeeping.

    Time inside ``transfer`` is what the rank blocks on a message: the transfer itself and, for a receive,
    however late the peer sent it; gloo's waits do not tell the two apart (``gimbench.distributed.links``
    bounds the transfer with a ping of the same size). ``message`` counts each step's messages per peer and
    size, ``aside`` books time spent measuring the links (the ping), which belongs to no step's work.
    """

    def __init__(self, device: torch.device) -> None:
        from gimbench.trainer import device_sync  # the trainer imports the strategies, which import this

        self.sync = device_sync(device)  # waits for the device's queued work, so a clock read covers it
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
        self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            seconds[-1] += time.perf_counter() - start

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


class SpreadStrategy(Strategy):
    """A strategy whose modules are spread over torchrun's processes: this rank trains ``owned`` only."""

    def __init__(self, cfg, loss: str = "infonce", world: World | None = None) -> None:
        super().__init__(cfg, loss)
        self.world = world or world_from_env()
        self.owned = module_groups(cfg.depth, self.world.size)[self.world.rank]
        self.clock = BusyClock(torch.device(cfg.device))

    def local(self, network: Network) -> Network:
        """Only this rank's modules and heads are kept."""
        return keep_only(network, self.owned)

    def whole_network(self, network: Network, full: Network | None) -> Network | None:
        """Rank 0: ``full`` (a freshly built whole network) loaded with every rank's trained modules; other
        ranks: ``None``. A collective: every rank calls it."""
        return reassemble(self.world, network, self.owned, full)
