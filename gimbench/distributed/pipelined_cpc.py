"""End-to-end CPC pipelined over torchrun's processes: ``--model cpc --pipeline gpipe|1f1b``.

The encoder is split into the same contiguous groups as module-parallel GIM (rank r holds the same modules).
The stage and its schedule (``gimbench.distributed.pipeline``, loaded at the first step:
``torch.distributed.pipelining`` takes seconds to import) split each batch into ``--micro-batches`` equal
parts, average their gradients and carry gradients back between ranks: the backward locking that GIM does
without. Negatives are drawn within each micro-batch.

The schedule's sends, receives and waits count as the rank's transfer time, and after the first step the
neighbouring ranks ping each other once with messages of the size they exchanged, to estimate how much
of that time is the transfer itself (``gimbench.distributed.links``).
"""

from __future__ import annotations

import torch

from gimbench.distributed.links import link_sizes, ping_links, timed_pipeline_transfers
from gimbench.distributed.stages import SpreadStrategy
from gimbench.distributed.world import World
from gimbench.models import Network
from gimbench.profiling.meter import NULL_METER, Meter
from gimbench.strategies import MethodSpec
from gimbench.strategies.base import optimizer_step


class PipelinedCPC(SpreadStrategy):
    """CPC whose encoder is cut into one pipeline stage per rank; this rank holds and steps its stage only."""

    def __init__(self, cfg, spec: MethodSpec, world: World, groups: list[list[int]],
                 costs: list[float] | None = None) -> None:
        super().__init__(cfg, spec, world, groups, costs)
        self.schedule = None  # made at the first step (see the module's docstring)
        self.meter: Meter = NULL_METER  # the meter of the step running; the stage reports its phases to it

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        if self.schedule is None:
            from gimbench.distributed.pipeline import pipeline_schedule

            self.schedule = pipeline_schedule(network, self.owned, self.world, x.device, self.clock, self.cfg,
                                              meter_of=lambda: self.meter)
        self.clock.begin_step()
        self.meter = meter
        target = torch.zeros(self.cfg.micro_batches, device=x.device)  # one slot per micro-batch's loss
        losses: list[torch.Tensor] = []
        with timed_pipeline_transfers(self.clock):
            self.schedule.step(*((x,) if self.world.rank == 0 else ()), target=target, losses=losses,
                               return_outputs=False)
        if not self.clock.links and self.clock.transfers_measured:
            ping_links(self.clock, self.world.rank, link_sizes(self.clock), x.device)
        for k in self.owned:
            with self.clock.busy(), meter.phase(k, "optimizer"):
                optimizer_step(optimizers[k])
        self.meter = NULL_METER
        result: list[torch.Tensor | None] = [None] * len(network)
        if losses:
            result[-1] = torch.stack(losses).mean().detach()
        return result

