"""End-to-end CPC: one loss on the top module, one backward through every module."""

from __future__ import annotations

import torch

from gimbench.models import Network
from gimbench.profiling.meter import Meter
from gimbench.strategies.base import STRATEGIES, Strategy, optimizer_step


class EndToEnd(Strategy):
    """CPC: the same encoder as GIM with a single InfoNCE loss at the top and full backprop."""

    description = "end-to-end CPC: one loss at the top, one backward through every module"

    def heads_on(self, depth: int) -> list[int]:
        return [depth - 1]

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        top = len(network) - 1
        h = x
        for k, module in enumerate(network.encoder):
            h_in = h
            with meter.phase(k, "forward"):
                h = module(h)
        with meter.phase(top, "loss"):
            loss = network.head(top)(h_in, h, labels)
        with meter.backward(network):
            loss.backward()
        for k, optimizer in enumerate(optimizers):
            with meter.phase(k, "optimizer"):
                optimizer_step(optimizer)
        return [None] * top + [loss.detach()]


@STRATEGIES.register("cpc")
def cpc(cfg) -> Strategy:
    """End-to-end CPC; pipelined over torchrun's processes with ``--pipeline gpipe|1f1b``."""
    if cfg.pipeline != "none":
        from gimbench.distributed.pipeline import PipelinedCPC  # torch.distributed.pipelining loads slowly

        return PipelinedCPC(cfg)
    return EndToEnd(cfg)


cpc.description = EndToEnd.description


@STRATEGIES.register("supervised")
def supervised(cfg) -> Strategy:
    """End-to-end supervised baseline: a classifier on the top module, full backprop."""
    return EndToEnd(cfg, loss="classifier")


supervised.description = "supervised end-to-end: a classifier (speaker / class) on the top module"
