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
from gimbench.errors import ConfigError
from gimbench.models import Network
from gimbench.profiling.meter import NULL_METER, Meter
from gimbench.strategies.base import STRATEGIES, optimizer_step


class PipelinedCPC(SpreadStrategy):
    """CPC whose encoder is cut into one pipeline stage per rank; this rank holds and steps its stage only."""

    description = "end-to-end CPC pipelined over torchrun's processes (--pipeline gpipe or 1f1b)"
    options = ("micro_batches",)
    called = "a pipelined cpc (--model cpc --pipeline gpipe or 1f1b)"
    vision_context = "pixelcnn"

    def __init__(self, cfg, world: World | None = None) -> None:
        super().__init__(cfg, world)
        self.schedule = None
        self.modules = None

    @classmethod
    def engine(cls, cfg) -> str:
        return f"pipeline-{cfg.pipeline}"

    @classmethod
    def check(cls, cfg, processes: int) -> None:
        if cfg.micro_batches <= 0:
            raise ConfigError(f"--micro-batches must be positive, got {cfg.micro_batches}")
        if cfg.batch_size % cfg.micro_batches:
            raise ConfigError(f"--micro-batches {cfg.micro_batches} must divide the batch size ({cfg.batch_size})")
        if cfg.pipeline == "1f1b" and cfg.micro_batches < processes:
            raise ConfigError(f"--pipeline 1f1b needs --micro-batches >= the number of processes ({processes}), "
                              f"got {cfg.micro_batches}")

    def heads_on(self, depth: int) -> list[int]:
        return [depth - 1]

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        if self.schedule is None:
            from gimbench.distributed.pipeline import pipeline_schedule

            self.modules, self.schedule = pipeline_schedule(network, self.owned, self.world, x.device, self.clock,
                                                            self.cfg)
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


for _schedule in ("gpipe", "1f1b"):
    STRATEGIES["cpc"].add(_schedule, PipelinedCPC)
