"""End-to-end CPC pipelined over torchrun's processes with ``torch.distributed.pipelining``.

The encoder is split into the same contiguous groups as module-parallel GIM (rank r holds the same modules).
Each rank wraps its modules in one ``PipelineStage``; the last stage ends in the CPC loss head and returns
each micro-batch's loss. ``--pipeline gpipe`` runs ``ScheduleGPipe`` (every micro-batch forward, then every
backward), ``--pipeline 1f1b`` runs ``Schedule1F1B`` (one forward, one backward in the steady state). The
schedule splits each batch into ``--micro-batches`` equal parts, averages their gradients (the loss of the
step is the mean of the micro-batches' losses) and carries gradients back between ranks: the backward
locking that GIM does without. Negatives are drawn within each micro-batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

from gimbench.models import Network
from gimbench.profiling.busy import BusyClock
from gimbench.profiling.meter import Meter

PIPELINE_SCHEDULES = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}


class StageModules(nn.Module):
    """One rank's modules as one pipeline stage; on the last stage, followed by the loss head.

    Returns the output of its top module, or on the last stage the micro-batch's loss as a shape-(1,) tensor.
    """

    def __init__(self, network: Network, owned: list[int], last: bool, meter_of: Callable[[], Meter]) -> None:
        super().__init__()
        self.network, self.owned, self.last = network, owned, last
        self.meter_of = meter_of  # the meter of the step running (the strategy's)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        meter = self.meter_of()
        for k in self.owned:
            h_in = h
            with meter.phase(k, "forward"):
                h = self.network.encoder[k](h)
        if not self.last:
            return h
        if not torch.is_grad_enabled():  # the stage's shape inference: leave the head's negative draws untouched
            return h.new_zeros(1)
        top = self.owned[-1]
        with meter.phase(top, "loss"):
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
        with self.clock.busy(), self.modules.meter_of().phase(self.modules.owned[-1], "backward"):
            return super().backward_one_chunk(*args, **kwargs)


def _sum(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The schedule's loss_fn: the last stage already returns the micro-batch's loss."""
    return output.sum()


def pipeline_schedule(network: Network, owned: list[int], world, device: torch.device, clock: BusyClock, cfg,
                      meter_of: Callable[[], Meter]):
    """The schedule that runs this rank's stage of the pipeline (``--pipeline``, ``--micro-batches``); the stage
    reports its phases to ``meter_of()``, the meter of the step running."""
    modules = StageModules(network, owned, last=world.rank == world.size - 1, meter_of=meter_of)
    stage = MeasuredStage(modules, clock, stage_index=world.rank, num_stages=world.size, device=device)
    return PIPELINE_SCHEDULES[cfg.pipeline](stage, n_microbatches=cfg.micro_batches, loss_fn=_sum)
