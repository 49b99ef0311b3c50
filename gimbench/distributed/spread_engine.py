"""The distributed modes that spread the encoder's modules over the ranks: ``module-parallel`` (GIM) and
``pipeline-gpipe`` / ``pipeline-1f1b`` (end-to-end CPC).

Each rank keeps only its own modules (``SpreadStrategy.local``) with their optimizers; after training, rank 0
receives every other rank's modules, so its checkpoint, probes and checksum cover the whole trained network.
Module-parallel GIM cuts the modules by measured cost unless ``--split-ranks count`` (``balance``). A rank's idle
fraction is the share of its step wall time (warm-up and memory-tracked steps left out) not
spent computing: the time it waited on its peers, the pipeline's bubble; ``gimbench.distributed.links``
splits the part of it spent inside sends and receives into transfer and waiting on the peer.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from gimbench.distributed.balance import agreed_groups
from gimbench.distributed.engine import ENGINES, Engine
from gimbench.distributed.links import timeline
from gimbench.models.cuts import even_groups


class SpreadEngine(Engine):
    """Modules spread over the ranks; only a stop is agreed on by every rank (a loss is one rank's own)."""

    agreed_failures = ("interrupted",)

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.groups: list[list[int]] | None = None  # the split the strategy holds, once prepared

    def wrap(self, parts, world):
        self.groups = parts.strategy.groups
        network = parts.strategy.local(parts.network)
        return replace(parts, network=network, optimizers=parts.strategy.make_optimizers(network))  # its own only

    def modules(self, network, world) -> list[int]:
        return self.groups[world.rank] if self.groups else even_groups(len(network), world.size)[world.rank]

    def _timeline(self, trainer) -> dict:
        cfg, strategy = trainer.strategy.cfg, trainer.strategy
        return timeline(strategy.clock, trainer.history.seconds, cfg.warmup_steps + cfg.memory_steps)

    def idle_fraction(self, trainer) -> float | None:
        return self._timeline(trainer)["idle_fraction"]

    def timeline(self, trainer) -> dict:
        shares = self._timeline(trainer)
        del shares["idle_fraction"]
        return shares

    def after_fit(self, trainer, build: Callable):
        full = build() if trainer.strategy.world.is_main else None
        whole = trainer.strategy.whole_network(trainer.network, full)
        return None if whole is None else whole.to(trainer.device)


class ModuleParallelEngine(SpreadEngine):
    """Module-parallel GIM stops without a collective: rank 0 decides and its decision travels with the data
    (see ``gimbench.distributed.module_parallel``)."""

    costs: list[float] | None = None  # seconds of each module's step, measured to balance the split

    def wrap(self, parts, world):
        if parts.strategy.cfg.split_ranks == "balanced":
            groups, self.costs = agreed_groups(world, parts)
            parts.strategy.regroup(groups)
        return super().wrap(parts, world)

    def row_extras(self, trainer) -> dict:
        """The split: how it was cut and, where balanced, the measured module step times it was cut by."""
        measured = None if self.costs is None else [1e3 * c for c in self.costs]
        return {"split": {"by": trainer.strategy.cfg.split_ranks, "module_step_ms": measured}}

    def stop_rule(self, runtime, stop, parts) -> Callable[[], bool]:
        strategy = parts.strategy
        strategy.listen(lambda: 0 if stop.signal is None else int(stop.signal))

        def requested() -> bool:
            if strategy.signal and stop.signal is None:  # rank 0 stopped the run: record the signal it got
                stop.signal = signal.Signals(strategy.signal)
            return strategy.should_stop()

        return requested


ENGINES.register("module-parallel")(partial(ModuleParallelEngine, "module-parallel"))
ENGINES.register("pipeline-gpipe")(partial(SpreadEngine, "pipeline-gpipe"))
ENGINES.register("pipeline-1f1b")(partial(SpreadEngine, "pipeline-1f1b"))
