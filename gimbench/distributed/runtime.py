"""What a run does differently under torchrun, whatever its distributed mode.

Rank 0 creates the run folder and tells the others where it is; only rank 0 writes checkpoints and
results.json, probes and prints. Ranks agree on stopping before every step (a signal any rank got stops
them all at the same step, so none waits in a collective for a peer that left), every rank's row is
gathered to rank 0 for results.json's ``distributed`` block, and a peer that dies or a collective that
times out becomes a ``peer-lost`` failure instead of a hang or a traceback.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from gimbench.config import ConfigError, RunConfig, one_line
from gimbench.distributed.engine import ENGINES, Engine
from gimbench.distributed.world import DEFAULT_TIMEOUT_S, World, backend_for, gather_to_main, joined
from gimbench.results.schema import Failure, ModuleResult, RankRow, StepResult
from gimbench.strategies import spec_of


def engine_for(cfg: RunConfig) -> Engine:
    """The engine of the mode the config's method runs in on several processes (its description names it)."""
    return ENGINES[spec_of(cfg).engine]()


class PeerLost(Exception):
    """A peer was lost before the run began (nothing was trained, nothing written); one line for the user."""


@dataclass
class Runtime:
    """This process's place in a distributed run and the engine of the run's mode."""

    world: World
    engine: Engine
    device: torch.device
    timeout_s: float = DEFAULT_TIMEOUT_S

    distributed = True  # the greedy floor is measured by single-process runs only

    @property
    def main(self) -> bool:
        return self.world.is_main

    def joined(self):
        """Inside, this process is a member of the run's process group."""
        return joined(self.world, self.device, self.timeout_s)

    def parts(self, cfg: RunConfig, build: Callable):
        """The run's parts as this rank trains them (``Engine.parts``; ``build`` as it says)."""
        return self.engine.parts(cfg, self.world, build)

    def stop_rule(self, stop, parts) -> Callable[[], bool]:
        """What the trainer asks before each step (``Engine.stop_rule``)."""
        return self.engine.stop_rule(self, stop, parts)

    def failure_of(self, error: BaseException, step: int) -> Failure | None:
        """The ``peer-lost`` failure record of an error a lost peer caused; ``None`` for any other error."""
        return self.peer_lost(error, step) if is_peer_failure(error) else None

    def gather(self, row: Callable[[Runtime], RankRow], failure: Failure | None, step: int):
        """The ``distributed`` block (see ``block``) of every rank's ``row(self)``."""
        return self.block(row(self), failure, step)

    def create_folder(self, create: Callable[[], Path]) -> Path:
        """Rank 0 creates the run folder with ``create()`` and sends its path (or its ``ConfigError``) to every rank.

        Raises:
            PeerLost: when a rank is gone before the run could start.
        """
        message: list = [None]
        if self.main:
            try:
                message = [("ok", str(create()))]
            except ConfigError as e:
                message = [("error", str(e))]
        try:
            dist.broadcast_object_list(message, src=0, device=self.device)
        except Exception as e:
            if not is_peer_failure(e):
                raise
            raise PeerLost(self.peer_lost(e, 0).message) from None
        kind, text = message[0]
        if kind == "error":
            raise ConfigError(text)
        return Path(text)

    def agreed_stop(self, stop) -> Callable[[], bool]:
        """``stop.requested`` agreed on by every rank: the highest signal number any rank received (its
        ``StopSignals`` is given that signal, so every rank records how the run stopped)."""

        def requested() -> bool:
            number = torch.tensor([0 if stop.signal is None else int(stop.signal)], device=self.device)
            dist.all_reduce(number, op=dist.ReduceOp.MAX)
            agreed = int(number.item())  # not stop.signal: a signal may have come in during the all-reduce
            if agreed and stop.signal is None:
                stop.signal = signal.Signals(agreed)
            return agreed > 0

        return requested

    def row(self, step: StepResult, module_rows: list[ModuleResult], modules: list[int], trainer) -> RankRow:
        """This rank's row of the ``distributed`` block."""
        extras = {**self.engine.row_extras(trainer), **self.engine.timeline(trainer)}
        return RankRow(self.world.rank, str(self.device), modules, step, module_rows,
                       self.engine.idle_fraction(trainer), extras)

    def block(self, row: RankRow, failure: Failure | None, step: int) -> tuple[dict | None, Failure | None]:
        """The ``distributed`` block on rank 0 (``None`` elsewhere) and the run's failure: every rank's row;
        after a failure the ranks may not share (a lost peer, one rank out of memory), or when a peer is lost
        while gathering, rank 0's own row only (the failure then becomes ``peer-lost``)."""
        rows = [row]
        if failure is None or failure.reason in self.engine.agreed_failures:
            try:
                rows = gather_to_main(self.world, row)
            except Exception as e:
                if not is_peer_failure(e):
                    raise
                rows, failure = [row], self.peer_lost(e, step)
        if not self.main:
            return None, failure
        return {"world_size": self.world.size, "backend": backend_for(self.device), "mode": self.engine.mode,
                "ranks": [r.to_json() for r in rows]}, failure

    def ends_together(self, failure: Failure | None) -> bool:
        """Whether the ranks all end the run with ``failure`` and are still there to say goodbye (``farewell``)."""
        return failure is not None and failure.reason in self.engine.agreed_failures

    def farewell(self) -> None:
        """Wait until every rank gets here; rank 0 comes after writing results.json. A rank that exits non-zero
        makes torchrun terminate the others at once, so without this a rank stopped by a signal could end rank 0
        while it is still writing. A peer lost meanwhile changes nothing: the results are written."""
        try:
            dist.barrier()
        except Exception as e:
            if not is_peer_failure(e):
                raise

    def after_fit(self, trainer, build: Callable) -> tuple:
        """The engine's ``after_fit`` (see ``Engine``): (the whole trained network or ``None``, ``None``); a peer
        lost meanwhile gives ``(None, its peer-lost failure record)``."""
        try:
            return self.engine.after_fit(trainer, build), None
        except Exception as e:
            if not is_peer_failure(e):
                raise
            return None, self.peer_lost(e, trainer.step)

    def peer_lost(self, error: BaseException, step: int) -> Failure:
        """The failure record of a collective that failed because a peer died or did not answer in time."""
        detail = one_line(error, 300)
        message = (f"rank {self.world.rank} lost contact with the other ranks at step {step}: a peer process died "
                   f"or did not answer within {self.timeout_s:g} s ({detail})")
        return Failure("peer-lost", message, step, {"rank": self.world.rank, "error": detail})


def is_peer_failure(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing for want of a peer (gloo, NCCL, the store, a timeout)."""
    return isinstance(error, dist.DistError) or (isinstance(error, RuntimeError) and any(
        text in str(error) for text in ("Connection closed by peer", "Connection reset by peer", "Timed out",
                                        "timed out", "Broken pipe")))
