"""Which rank holds which modules when modules are spread over ranks, and putting the network back together.

Module-parallel GIM and pipelined CPC split the encoder the same way: rank r holds one contiguous group of
modules (with their heads). Every rank builds the whole network from the seed, as a single process does, so
the initial parameters are identical; then it keeps only its own modules and frees the others. At the end
rank 0 receives every other rank's modules and holds the whole trained network again.
"""

from __future__ import annotations

import torch
from torch import nn

from gimbench.config import module_count
from gimbench.distributed.world import World, gather_to_main, world_from_env
from gimbench.models import Network
from gimbench.models.cuts import even_groups
from gimbench.profiling.busy import BusyClock
from gimbench.strategies.base import Strategy


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


class SpreadStrategy(Strategy):
    """A strategy whose modules are spread over torchrun's processes: this rank trains ``owned`` only."""

    spreads = True

    def __init__(self, cfg, world: World | None = None) -> None:
        super().__init__(cfg)
        self.world = world or world_from_env()
        self.groups = even_groups(module_count(cfg), self.world.size)  # by count; ``regroup`` may change it
        self.owned = self.groups[self.world.rank]
        self.clock = BusyClock(torch.device(cfg.device))

    def regroup(self, groups: list[list[int]]) -> None:
        """Hold ``groups[rank]`` instead (before ``local`` frees the others); every rank must pass the same."""
        self.groups, self.owned = groups, groups[self.world.rank]

    def local(self, network: Network) -> Network:
        """Only this rank's modules and heads are kept."""
        return keep_only(network, self.owned)

    def whole_network(self, network: Network, full: Network | None) -> Network | None:
        """Rank 0: ``full`` (a freshly built whole network) loaded with every rank's trained modules; other
        ranks: ``None``. A collective: every rank calls it."""
        return reassemble(self.world, network, self.owned, full)
