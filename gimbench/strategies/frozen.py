"""Baselines that train nothing: a randomly initialised encoder, and MFCC features.

They still run (and get profiled) as forward passes without autograd, so their memory and time rows
sit beside the trained methods', and the probes read their features like any other run's.
"""

from __future__ import annotations

import torch

from gimbench.models import Network
from gimbench.profiling.meter import Meter
from gimbench.strategies.base import Strategy
from gimbench.strategies.method import STRATEGIES, Method, MethodSpec


class Frozen(Strategy):
    """No heads, no optimizers: each step is the encoder's forward pass under ``torch.no_grad``."""

    def make_optimizers(self, network: Network) -> list[None]:
        return [None] * len(network)

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        with torch.no_grad(), self.precision.cast():
            for k, module in enumerate(network.encoder):
                with meter.phase(k, "forward"):
                    x = module(x)
        return [None] * len(network)

    def train_alone(self, network: Network, k: int, h: torch.Tensor, optimizer, meter: Meter, labels=None) -> None:
        with torch.no_grad(), meter.phase(k, "forward"), self.precision.cast():
            network.encoder[k](h)


STRATEGIES.register("random")(Method.single(MethodSpec(
    "random init: the encoder as initialised, never trained", Frozen, heads="none")))
STRATEGIES.register("mfcc")(Method.single(MethodSpec(
    "MFCC features (audio only; torchaudio, 13 coefficients + deltas, 10 ms hop)", Frozen, heads="none",
    encoder="mfcc", modalities=("audio",), depth=1)))  # one module: the MFCC front end
