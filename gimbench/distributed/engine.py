"""Distributed modes, registered by the name results.json's ``distributed.mode`` records.

A run under torchrun trains with the engine of its mode (the one its method's description names). The engine
builds the run's parts for this rank before the trainer is made (wraps the strategy and slices the data, or
builds the rank's own modules and strategy) and says what each rank's row holds;
everything else (run folder, stop agreement, gathering rows, results) is the run plumbing's
(``gimbench.distributed.runtime``), shared by every mode.
"""

from __future__ import annotations

from collections.abc import Callable

from gimbench.config import RunConfig
from gimbench.registry import Registry

ENGINES = Registry("distributed mode")


# Failures every rank meets at the same step (by default losses and stops are agreed on): after them the
# ranks are all still there to gather their rows. After any other failure a peer may be gone.
AGREED_FAILURES = ("interrupted", "non-finite-loss")


class Engine:
    """What one distributed mode does to a run; the defaults suit a mode where every rank trains every module."""

    mode = ""
    agreed_failures = AGREED_FAILURES

    def parts(self, cfg: RunConfig, world, build: Callable):
        """The run's ``Parts`` (``gimbench.trainer``) as this rank of ``world`` trains them; ``build(cfg, strategy=,
        owned=)`` builds them on this rank's device (``gimbench.runs.build``)."""
        return build(cfg)

    def modules(self, trainer, world) -> list[int]:
        """The indices of the modules this rank trains."""
        return list(range(len(trainer.network)))

    def local_batch(self, cfg: RunConfig, world) -> int:
        """Examples this rank trains on per step."""
        return cfg.batch_size

    def idle_fraction(self, trainer) -> float | None:
        """Share of this rank's step wall time spent waiting on peers; ``None`` where not measured."""
        return None

    def row_extras(self, trainer) -> dict:
        """Keys this mode adds to each rank's row of results.json's ``distributed`` block."""
        return {}

    def timeline(self, trainer) -> dict:
        """This rank's waiting split (``gimbench.distributed.links.timeline``): the shares of its step wall time
        inside transfers (``comm_fraction``), estimated transfer (``transfer_fraction``) and waiting on the peer
        (``wait_fraction``), and the ping per link (``links``); ``None`` where not measured."""
        return {"comm_fraction": None, "transfer_fraction": None, "wait_fraction": None, "links": None}

    def stop_rule(self, runtime, stop, parts) -> Callable[[], bool]:
        """What the trainer asks before each step: by default a stop any rank received, agreed on by all."""
        return runtime.agreed_stop(stop)

    def after_fit(self, trainer, build: Callable):
        """After training (complete or stopped, every rank at the same step): on rank 0, the whole trained network
        the run's results describe when this rank holds only part of it (``build()`` makes a fresh network of the
        run's configuration); ``None`` when the trainer's network is the whole one."""
        return None
