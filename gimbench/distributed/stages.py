"""Which rank holds which modules when modules are spread over ranks, and putting the network back together.

Module-parallel GIM and pipelined CPC split the encoder the same way: rank r holds one contiguous group of
modules (with their heads). Every rank builds the whole network from the seed, as a single process does, so
the initial parameters are identical; its network is then made of its own modules only (``rank_share``), before
any optimizer or trainer exists. At the end rank 0 receives every other rank's modules and holds the whole
trained network again.
"""

from __future__ import annotations

import torch
from torch import nn

from gimbench.distributed.world import World, gather_to_main
from gimbench.models import Network
from gimbench.profiling.busy import BusyClock
from gimbench.strategies import MethodSpec, Strategy


class Vacant(nn.Module):
    """Stands in for a module another rank holds: no parameters, and running it is a bug."""

    def forward(self, *args: object) -> torch.Tensor:
        raise RuntimeError("this module lives on another rank")


def rank_share(network: Network, owned: list[int]) -> Network:
    """A network of ``network``'s modules (and heads) in ``owned`` only, the others ``Vacant``; module indices and
    names stay as they were. ``network`` is a whole one just built, to be dropped (its other modules are freed)."""
    modules = [module if k in owned else Vacant() for k, module in enumerate(network.encoder)]
    heads = {k: network.head(k) for k in owned if network.head(k) is not None}
    return Network(modules, heads, network.names, network.layers, tokens=network.tokens)


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
    """A strategy whose modules are spread over torchrun's processes: this rank trains ``groups[rank]`` only.

    ``groups`` are the modules of every rank (the same on all of them); ``costs`` the seconds of each module's
    step they were cut by (``gimbench.distributed.balance``), ``None`` where they were cut by count.
    """

    def __init__(self, cfg, spec: MethodSpec, world: World, groups: list[list[int]],
                 costs: list[float] | None = None) -> None:
        super().__init__(cfg, spec)
        self.world, self.groups, self.costs = world, groups, costs
        self.owned = groups[world.rank]
        self.clock = BusyClock(torch.device(cfg.device))

    def whole_network(self, network: Network, full: Network | None) -> Network | None:
        """Rank 0: ``full`` (a freshly built whole network) loaded with every rank's trained modules; other
        ranks: ``None``. A collective: every rank calls it."""
        return reassemble(self.world, network, self.owned, full)
