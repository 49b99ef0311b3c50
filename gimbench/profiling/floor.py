"""The greedy floor, measured: each module trained alone, with the run's own memory meter.

For module k, the input it sees in training is computed without autograd from the batch, then the
module is trained by itself inside one memory-tracked step, by the function the run hands in (its
strategy's ``train_alone``: profiling knows how to measure, the strategy how to train). Its step peak is
what training that module needs with everything resident (every module's parameters and optimizer
state) and its input live: no schedule can go below the largest of these. The run's parameters,
optimizer state and random generators are copied to the host first and put back after, so the
measurement leaves training exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch

from gimbench.device import rng_state, set_rng_state
from gimbench.profiling.memory import MemoryMeter
from gimbench.profiling.meter import Meter

# (network, k, h, optimizer, meter, labels): module k's forward, local loss, backward and step on its input h
TrainAlone = Callable[[torch.nn.Module, int, torch.Tensor, object, Meter, torch.Tensor | None], None]


def _to_host(value):
    """A host copy of a state dict's tensors (nested dicts and lists kept)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_host(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_host(v) for v in value)
    return value


def alone_peaks(train_alone: TrainAlone, network: torch.nn.Module, optimizers: list, x: torch.Tensor,
                labels: torch.Tensor | None, device: torch.device,
                cast: Callable[[], AbstractContextManager] = nullcontext) -> list[int | None]:
    """Each module's allocator step peak when trained alone (``train_alone``) on its input from batch ``x``,
    each input computed in the run's arithmetic (``cast``: its autocast, as training computes it; a float32
    input beside a bf16 run's would count twice the bytes training holds)."""
    model = _to_host(network.state_dict())
    states = [None if o is None else _to_host(o.state_dict()) for o in optimizers]
    rng = rng_state()

    def put_back() -> None:
        network.load_state_dict(model)
        for optimizer, state in zip(optimizers, states, strict=True):
            if optimizer is not None:  # a fresh copy: on the host, Adam would adopt the snapshot's own tensors
                optimizer.load_state_dict(_to_host(state))
        set_rng_state(rng)

    peaks: list[int | None] = []
    h = x
    for k in range(len(network)):
        meter = MemoryMeter(network, optimizers, device)
        try:
            with meter.step():
                train_alone(network, k, h, optimizers[k], meter, labels)
        finally:
            put_back()
        peaks.append(meter.steps[0].allocator_peak)
        if k + 1 < len(network):
            with torch.no_grad(), cast():
                h = network.encoder[k](h)  # the next module's input, from the parameters as they were
    return peaks
