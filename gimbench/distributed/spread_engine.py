"""The distributed modes that spread the encoder's modules over the ranks: ``module-parallel`` (GIM) and
``pipeline-gpipe`` / ``pipeline-1f1b`` (end-to-end CPC).

Each rank builds only its own modules (``gimbench.distributed.stages.rank_share``) with their optimizers, and the
strategy of its mode for them; after training, rank 0 receives every other rank's modules, so its checkpoint,
probes and checksum cover the whole trained network.
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

from gimbench.config import RunConfig, module_count
from gimbench.distributed.balance import agreed_groups
from gimbench.distributed.engine import ENGINES, Engine
from gimbench.distributed.links import timeline
from gimbench.distributed.module_parallel import ModuleParallel
from gimbench.distributed.pipelined_cpc import PipelinedCPC
from gimbench.distributed.stages import SpreadStrategy
from gimbench.distributed.world import device_of
from gimbench.models.cuts import even_groups
from gimbench.strategies import spec_of


class SpreadEngine(Engine):
    """Modules spread over the ranks; only a stop is agreed on by every rank (a loss is one rank's own).

    ``trains`` is the mode's strategy class (a ``SpreadStrategy``), made for each rank with the split.
    """

    agreed_failures = ("interrupted",)

    def __init__(self, mode: str, trains: type[SpreadStrategy]) -> None:
        self.mode, self.trains = mode, trains

    def split(self, cfg: RunConfig, world, build: Callable) -> tuple[list[list[int]], list[float] | None]:
        """The modules of every rank, and the step costs they were cut by (``None``: cut by count)."""
        return even_groups(module_count(cfg), world.size), None

    def parts(self, cfg: RunConfig, world, build: Callable):
        groups, costs = self.split(cfg, world, build)
        strategy = self.trains(cfg, spec_of(cfg), world, groups, costs)
        return build(cfg, strategy=strategy, owned=groups[world.rank])

    def modules(self, trainer, world) -> list[int]:
        return trainer.strategy.owned

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
    (see ``gimbench.distributed.module_parallel``). Its split is balanced by measured step costs unless
    ``--split-ranks count``: rank 0 measures each module trained as ``--gim-mode per-module`` trains it."""

    def split(self, cfg: RunConfig, world, build: Callable) -> tuple[list[list[int]], list[float] | None]:
        if cfg.split_ranks != "balanced":
            return super().split(cfg, world, build)
        return agreed_groups(world, lambda: build(replace(cfg, gim_mode="per-module")), device_of(world, cfg.device))

    def row_extras(self, trainer) -> dict:
        """The split: how it was cut and, where balanced, the measured module step times it was cut by."""
        costs = trainer.strategy.costs
        measured = None if costs is None else [1e3 * c for c in costs]
        return {"split": {"by": trainer.strategy.cfg.split_ranks, "module_step_ms": measured}}

    def stop_rule(self, runtime, stop, parts) -> Callable[[], bool]:
        strategy = parts.strategy
        strategy.listen(lambda: 0 if stop.signal is None else int(stop.signal))

        def requested() -> bool:
            if strategy.signal and stop.signal is None:  # rank 0 stopped the run: record the signal it got
                stop.signal = signal.Signals(strategy.signal)
            return strategy.should_stop()

        return requested


ENGINES.register("module-parallel")(partial(ModuleParallelEngine, "module-parallel", ModuleParallel))
ENGINES.register("pipeline-gpipe")(partial(SpreadEngine, "pipeline-gpipe", PipelinedCPC))
ENGINES.register("pipeline-1f1b")(partial(SpreadEngine, "pipeline-1f1b", PipelinedCPC))
