"""What each layer costs in memory when trained as its own module: the measurements ``--split balanced`` cuts by.

The caller builds the ``--depth`` layers as one module each, with a head each, and hands in how to train one
(``train``: forward, local loss, backward, optimizer step, dense gradients; the strategy's). They are trained
once, layer by layer, inside one step of the memory meter, and per layer l this reads:

- ``kept[l]``: the activation bytes l's forward keeps for backward (the tracker's count at the peak of l's
  forward phase);
- ``peak[l]``: l's step peak (the tracker's highest live bytes over its phases: everything resident, its input,
  its graph, its head's loss and backward).

The counts are tensor bytes, deterministic for a configuration (``gimbench.strategies.split`` says how a cut is
modelled from them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gimbench.profiling.memory import MemoryMeter
from gimbench.profiling.meter import Meter

# (k, h, meter) -> module k's output, after its forward, local loss, backward and optimizer step on input h
TrainLayer = Callable[[int, torch.Tensor, Meter], torch.Tensor]


def layer_costs(network: torch.nn.Module, optimizers: list, train: TrainLayer, x: torch.Tensor,
                device: torch.device) -> tuple[list[int], list[int]]:
    """(kept, peak) bytes of each of ``network``'s modules (one layer each) trained in turn on batch ``x``."""
    depth = len(network)
    meter = MemoryMeter(network, optimizers, device)
    with meter.step():
        h = x
        for k in range(depth):
            h = train(k, h, meter)
    intervals = meter.steps[0].intervals
    kept = [intervals[(k, "forward")].tracked.activation_by_module.get(k, 0) for k in range(depth)]
    peak = [max(i.tracked.live for (m, _), i in intervals.items() if m == k) for k in range(depth)]
    return kept, peak
