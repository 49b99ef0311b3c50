"""One training session of a run: what its checkpoints hold, restoring them, and writing them every N steps.

A run may take several sessions (interrupted, then resumed). Its results are computed over all of them:
the per-step history (losses, times) and the profiler's raw measurements travel in the checkpoint, so
a resumed run reports every step measured by any session, as one uninterrupted run would. Each
session warms up again: its first ``--warmup-steps`` steps are not timed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gimbench.config import ConfigError, RunConfig, one_line
from gimbench.device import rng_state, set_rng_state
from gimbench.models import Network
from gimbench.profiling import saved
from gimbench.profiling.profile import Profiler
from gimbench.results.schema import MaxBatch
from gimbench.runs import checkpoint
from gimbench.trainer import History, Trainer


def rewarm(kinds: list[str], start: int, warmup: int) -> None:
    """Mark the first ``warmup`` timed or plain steps from ``start`` as warm-up (a resumed session is cold)."""
    for i in range(start, min(start + warmup, len(kinds))):
        if kinds[i] in ("timed", "plain"):
            kinds[i] = "warmup"


def _kinds(kinds: list, steps: int) -> list[str]:
    if len(kinds) != steps or not all(k in ("warmup", "memory", "timed", "plain") for k in kinds):
        raise ValueError(f"the checkpoint's step kinds do not cover its {steps} steps")
    return list(kinds)


@dataclass
class Session:
    """The state of a run in progress, as checkpoints hold it."""

    cfg: RunConfig
    folder: Path
    trainer: Trainer
    profiler: Profiler
    environment: dict
    started: float = field(default_factory=time.perf_counter)  # when this session began building the run
    earlier: list[dict] = field(default_factory=list)  # the sessions before this one
    checkpoint_step: int | None = None  # the step of the newest checkpoint written or loaded
    max_batch: MaxBatch | None = None  # the batch-size search's MaxBatch (--find-max-batch), kept through resumes
    writes: bool = True  # False on torchrun's ranks other than 0: only rank 0 writes checkpoints
    tracer: object = None  # with --trace: the TraceMeter of the traced step (gimbench.profiling.trace)

    def __post_init__(self) -> None:
        self.start_step = self.trainer.step
        self.whole: Network | None = None

    @property
    def network(self) -> Network:
        """The trained network the run's checkpoints and results describe."""
        return self.trainer.network if self.whole is None else self.whole

    def adopt(self, whole: Network) -> None:
        """The whole trained network, put together on rank 0 after training when each rank trained part of it
        (module-parallel GIM, a pipeline): checkpoints, probes and results describe it from now on."""
        self.whole = whole

    def restore(self, state: dict) -> None:
        """Continue from a loaded checkpoint, or ``ConfigError`` if it does not fit this configuration."""
        t = self.trainer
        try:
            checkpoint.check_contents(state, t.network, t.optimizers)
            t.network.load_state_dict(state["model"])
            for optimizer, optimizer_state in zip(t.optimizers, state["optimizers"], strict=True):
                if optimizer is not None:
                    optimizer.load_state_dict(optimizer_state)
            t.strategy.load_state(state["strategy"])
            t.restore(int(state["step"]), History(**state["history"]), state["rng"]["data"])
            set_rng_state(state["rng"])
            saved.restore(self.profiler, state["profile"])
            self.profiler.kinds[: t.step] = _kinds(state["kinds"], t.step)
            self.earlier = list(state["sessions"])
            if state.get("max_batch") is not None:
                self.max_batch = MaxBatch.from_json(state["max_batch"])
        except (KeyError, IndexError, ValueError, RuntimeError, TypeError, AttributeError, OverflowError) as e:
            raise ConfigError(f"{self.folder}: the checkpoint does not fit the run's configuration ({one_line(e)})") \
                from None
        self.start_step = self.checkpoint_step = t.step
        rewarm(self.profiler.kinds, t.step, self.cfg.warmup_steps)

    def sessions(self) -> list[dict]:
        """Every session so far, this one last: steps it ran, its wall time, device and code version."""
        now = {"start_step": self.start_step, "end_step": self.trainer.step,
               "wall_seconds": time.perf_counter() - self.started, "device": self.environment.get("device"),
               "git_commit": self.environment.get("git_commit")}
        return [*self.earlier, now]

    def state(self) -> dict:
        """The checkpoint content: tensors and plain types only."""
        t = self.trainer
        return {
            "model": self.network.state_dict(),
            "optimizers": [None if o is None else o.state_dict() for o in t.optimizers],
            "config": self.cfg.to_dict(),
            "step": t.step,
            "strategy": t.strategy.state(),
            "rng": rng_state() | {"data": t.generator.get_state()},
            "history": asdict(t.history),
            "profile": saved.measurements(self.profiler),
            "kinds": self.profiler.kinds[: t.step],  # as run: a resumed session's warm-up differs from the plan
            "sessions": self.sessions(),
            "max_batch": None if self.max_batch is None else asdict(self.max_batch),
        }

    def save(self) -> None:
        """Write a checkpoint now (the previous one is kept as ``checkpoint.prev.pt``)."""
        if self.writes:
            checkpoint.save(self.folder, self.state())
        self.checkpoint_step = self.trainer.step

    def after_step(self) -> None:
        """Write the periodic checkpoint when one is due (the last step's is written by the caller)."""
        every, step = self.cfg.checkpoint_every, self.trainer.step
        if every and step % every == 0 and step < self.cfg.steps:
            self.save()
