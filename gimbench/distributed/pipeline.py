"""End-to-end CPC pipelined over torchrun's processes with ``torch.distributed.pipelining``.

The encoder is split into the same contiguous groups as module-parallel GIM (rank r holds the same modules).
Each rank wraps its modules in one ``PipelineStage``; the last stage ends in the CPC loss head and returns
each micro-batch's loss. ``--pipeline gpipe`` runs ``ScheduleGPipe`` (every micro-batch forward, then every
backward), ``--pipeline 1f1b`` runs ``Schedule1F1B`` (one forward, one backward in the steady state). The
schedule splits each batch into ``--micro-batches`` equal parts, averages their gradients (the loss of the
step is the mean of the micro-batches' losses) and carries gradients back between ranks: the backward
locking that GIM does without. Negatives are drawn within each micro-batch.

The schedule's sends, receives and waits count as the rank's transfer time, and after the first step the
neighbouring ranks ping each other once with messages of the size they exchanged, to estimate how much
of that time is the transfer itself (``gimbench.distributed.links``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

from gimbench.distributed.links import link_sizes, ping_links, timed_pipeline_transfers
from gimbench.distributed.stages import BusyClock, SpreadStrategy
from gimbench.distributed.world import World
from gimbench.models import Network
from gimbench.profiling.meter import NULL_METER, Meter
from gimbench.strategies.base import optimizer_step

SCHEDULES = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}


class StageModules(nn.Module):
    """One rank's modules as one pipeline stage; on the last stage, followed by the loss head.

    Returns the output of its top module, or on the last stage the micro-batch's loss as a shape-(1,) tensor.
    """

    def __init__(self, network: Network, owned: list[int], last: bool) -> None:
        super().__init__()
        self.network, self.owned, self.last = network, owned, last
        self.meter: Meter = NULL_METER  # set for each step

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for k in self.owned:
            h_in = h
            with self.meter.phase(k, "forward"):
                h = self.network.encoder[k](h)
        if not self.last:
            return h
        if not torch.is_grad_enabled():  # the stage's shape inference: leave the head's negative draws untouched
            return h.new_zeros(1)
        top = self.owned[-1]
        with self.meter.phase(top, "loss"):
            return self.network.head(top)(h_in, h).reshape(1)


class MeasuredStage(PipelineStage):
    """A ``PipelineStage`` whose forward and backward chunks count as this rank's compute time; each backward
    chunk (through all of the stage's modules) is booked to the stage's top module."""

    def __init__(self, modules: StageModules, clock: BusyClock, **kwargs) -> None:
        super().__init__(modules, **kwargs)
        self.modules, self.clock = modules, clock

    def forward_one_chunk(self, *args, **kwargs):
        with self.clock.busy():
            return super().forward_one_chunk(*args, **kwargs)

    def backward_one_chunk(self, *args, **kwargs):
        with self.clock.busy(), self.modules.meter.phase(self.modules.owned[-1], "backward"):
            return super().backward_one_chunk(*args, **kwargs)


def _sum(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The schedule's loss_fn: the last stage already returns the micro-batch's loss."""
    return output.sum()


class PipelinedCPC(SpreadStrategy):
    """CPC whose encoder is cut into one pipeline stage per rank; this rank holds and steps its stage only."""

    description = "end-to-end CPC pipelined over torchrun's processes (--pipeline gpipe or 1f1b)"

    def __init__(self, cfg, loss: str = "infonce", world: World | None = None) -> None:
        super().__init__(cfg, loss, world)
        self.schedule = None
        self.modules: StageModules | None = None

    def heads_on(self, depth: int) -> list[int]:
        return [depth - 1]

    def _build(self, network: Network, device: torch.device) -> None:
        last = self.world.rank == self.world.size - 1
        self.modules = StageModules(network, self.owned, last)
        stage = MeasuredStage(self.modules, self.clock, stage_index=self.world.rank, num_stages=self.world.size,
                              device=device)
        self.schedule = SCHEDULES[self.cfg.pipeline](stage, n_microbatches=self.cfg.micro_batches, loss_fn=_sum)

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        if self.schedule is None:
            self._build(network, x.device)
        self.clock.begin_step()
        self.modules.meter = meter
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
        self.modules.meter = NULL_METER
        result: list[torch.Tensor | None] = [None] * len(network)
        if losses:
            result[-1] = torch.stack(losses).mean().detach()
        return result
