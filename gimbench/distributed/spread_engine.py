"""The distributed modes that spread the encoder's modules over the ranks: ``module-parallel`` (GIM) and
``pipeline-gpipe`` / ``pipeline-1f1b`` (end-to-end CPC).

Each rank keeps only its own modules (``SpreadStrategy.local``) with their optimizers; after training, rank 0
receives every other rank's modules, so its checkpoint, probes and checksum cover the whole trained network.
A rank's idle fraction is the share of its step wall time (warm-up and memory-tracked steps left out) not
spent computing: the time it waited on its peers, the pipeline's bubble; ``gimbench.distributed.links``
splits the part of it spent inside sends and receives into transfer and waiting on the peer.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from functools import partial

from gimbench.distributed.engine import ENGINES, Engine
from gimbench.distributed.links import timeline
from gimbench.distributed.stages import module_groups


class SpreadEngine(Engine):
    """Modules spread over the ranks; only a stop is agreed on by every rank (a loss is one rank's own)."""

    agreed_failures = ("interrupted",)

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def prepare(self, trainer, world, device) -> None:
        trainer.strategy.local(trainer.network)
        trainer.optimizers = trainer.strategy.make_optimizers(trainer.network)  # for this rank's modules only

    def modules(self, network, world) -> list[int]:
        return module_groups(len(network), world.size)[world.rank]

    def _timeline(self, trainer) -> dict:
        cfg, strategy = trainer.strategy.cfg, trainer.strategy
        return timeline(strategy.clock, trainer.history.seconds, cfg.warmup_steps + cfg.memory_steps)

    def idle_fraction(self, trainer) -> float | None:
        return self._timeline(trainer)["idle_fraction"]

    def timeline(self, trainer) -> dict:
        shares = self._timeline(trainer)
        del shares["idle_fraction"]
        return shares

    def after_fit(self, trainer, build: Callable) -> None:
        full = build() if trainer.strategy.world.is_main else None
        whole = trainer.strategy.whole_network(trainer.network, full)
        if whole is not None:
            trainer.network = whole.to(trainer.device)


class ModuleParallelEngine(SpreadEngine):
    """Module-parallel GIM stops without a collective: rank 0 decides and its decision travels with the data
    (see ``gimbench.distributed.module_parallel``)."""

    def stop_rule(self, runtime, stop, trainer) -> Callable[[], bool]:
        strategy = trainer.strategy
        strategy.local_stop = lambda: 0 if stop.signal is None else int(stop.signal)

        def requested() -> bool:
            if strategy.signal and stop.signal is None:  # rank 0 stopped the run: record the signal it got
                stop.signal = signal.Signals(strategy.signal)
            return strategy.should_stop()

        return requested


ENGINES.register("module-parallel")(partial(ModuleParallelEngine, "module-parallel"))
ENGINES.register("pipeline-gpipe")(partial(SpreadEngine, "pipeline-gpipe"))
ENGINES.register("pipeline-1f1b")(partial(SpreadEngine, "pipeline-1f1b"))
