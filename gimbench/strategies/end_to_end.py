"""End-to-end CPC: one loss on the top module, one backward through every module."""

from __future__ import annotations

import torch

from gimbench.models import Network
from gimbench.profiling.meter import Meter
from gimbench.strategies.base import STRATEGIES, Method, Strategy, optimizer_step


class EndToEnd(Strategy):
    """CPC: the same encoder as GIM with a single InfoNCE loss at the top and full backprop."""

    description = "end-to-end CPC: one loss at the top, one backward through every module"
    vision_context = "pixelcnn"

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


class Supervised(EndToEnd):
    description = "supervised end-to-end: a classifier (speaker / class) on the top module"
    loss = "classifier"
    vision_context = "none"


# ``--pipeline gpipe|1f1b`` variants are added by gimbench.distributed (they run over torchrun's processes).
STRATEGIES.register("cpc")(Method(EndToEnd.description, {"none": EndToEnd}, choice="pipeline"))
STRATEGIES.register("supervised")(Method.single(Supervised))
