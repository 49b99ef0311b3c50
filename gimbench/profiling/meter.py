"""The interface strategies report to, and the shared mechanics of measuring meters.

A strategy wraps each unit of work in ``meter.phase(module, name)`` with ``name`` one of
``PHASES``. A single backward that runs through several modules (end-to-end, summed losses) is
wrapped in ``meter.backward(network)`` instead: the meter then splits that pass at the moments
parameter gradients are accumulated, and gives each slice to the module owning the gradient that
ended it (the module's own backward, and its head's, finish with its gradients). The trainer wraps
the whole step in ``meter.step()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from torch import nn

PHASES = ("forward", "loss", "backward", "optimizer")
Key = tuple[int, str]


class Meter:
    """Measures nothing; subclasses time or track memory. Strategies never ask which one they have."""

    def step(self) -> AbstractContextManager[None]:
        """A whole training step happens inside this context."""
        return nullcontext()

    def phase(self, module: int, name: str) -> AbstractContextManager[None]:
        """Work of ``module`` in phase ``name`` happens inside this context."""
        return nullcontext()

    def backward(self, network: nn.Module) -> AbstractContextManager[None]:
        """One backward pass through several modules happens inside this context."""
        return nullcontext()


NULL_METER = Meter()


class IntervalMeter(Meter):
    """A meter that measures intervals: ``_begin()`` opens one, ``_end(key)`` books it to ``key``."""

    def _begin(self) -> None:
        raise NotImplementedError

    def _end(self, key: Key) -> None:
        raise NotImplementedError

    @contextmanager
    def phase(self, module: int, name: str) -> Iterator[None]:
        self._begin()
        yield
        self._end((module, name))

    @contextmanager
    def backward(self, network: nn.Module) -> Iterator[None]:
        owners = {p: k for k in range(len(network)) for p in network.owned_parameters(k)}
        last = [len(network) - 1]

        def booked(owner: int):
            def hook(_param: nn.Parameter) -> None:
                self._end((owner, "backward"))
                last[0] = owner
                self._begin()

            return hook

        handles = [p.register_post_accumulate_grad_hook(booked(k)) for p, k in owners.items()]
        self._begin()
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        self._end((last[0], "backward"))  # what follows the last gradient: still that module's pass
