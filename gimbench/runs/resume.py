"""``gimbench run --resume FOLDER [--steps TOTAL]``: continue a run from its newest checkpoint, in its own folder.

The run keeps its recorded options; only the ones in ``RESUMABLE`` may change. On the CPU (deterministic
kernels) a run resumed to TOTAL steps ends with the same parameters as one that ran TOTAL steps at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from gimbench.config import ConfigError, RunConfig, recorded_config, resolve
from gimbench.distributed.world import world_from_env
from gimbench.results.schema import RunResult, read_results
from gimbench.runs import checkpoint
from gimbench.runs.folder import RunLock
from gimbench.runs.run import Listeners, Run
from gimbench.trainer import StepRecord

RESUME_REFUSED = "--resume continues runs of one process; runs of several (--nproc, torchrun) cannot be resumed yet"
RESUMABLE = ("steps", "checkpoint_every", "quiet", "probe")  # options that may differ from the recorded run


def resume_config(folder: Path, state: dict, changes: dict) -> RunConfig:
    """The recorded config with ``changes`` (``RESUMABLE`` fields) applied, checked against the checkpoint."""
    unknown = sorted(set(changes) - set(RESUMABLE))
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise ConfigError(f"--resume continues {folder} with its recorded options; {flags} cannot be changed "
                          "(only --steps, --checkpoint-every, --quiet and --no-probe)")
    recorded = dataclasses.replace(recorded_config(state["config"], f"{folder} checkpoint"), **changes)
    cfg = resolve(recorded, recorded.nproc, recorded=True)
    if cfg.nproc > 1:
        raise ConfigError(f"{folder} was trained by {cfg.nproc} processes: {RESUME_REFUSED}")
    done = state["step"]
    if not isinstance(done, int) or done < 0:
        raise ConfigError(f"{folder}: the checkpoint records no valid step ({done!r})")
    if cfg.steps < done:
        raise ConfigError(f"--steps {cfg.steps} is less than the {done} steps {folder} has already done")
    if (Path(folder) / "results.json").exists():
        previous = read_results(folder)
        _check_same_run(folder, previous.get("config"), state["config"])
        if previous.get("status") == "complete" and cfg.steps == done:
            raise ConfigError(f"{folder} is complete at {done} steps; pass --steps TOTAL above {done} to extend it")
    return cfg


def _check_same_run(folder: Path, recorded: object, saved: dict) -> None:
    """results.json and the checkpoint must describe the same run (options that may change aside)."""
    if not isinstance(recorded, dict):
        raise ConfigError(f"{folder}/results.json records no run configuration")
    differ = sorted(k for k in set(recorded) | set(saved) if k not in RESUMABLE and recorded.get(k) != saved.get(k))
    if differ:
        raise ConfigError(f"{folder}: results.json and the checkpoint describe different runs "
                          f"({', '.join(differ)} differ); move one of them away")


def resume(
    folder: Path, *, on_start: Callable[[RunConfig, Path], None] = lambda cfg, folder: None,
    on_step: Callable[[StepRecord], None] = lambda record: None,
    on_probe: Callable[[str, int], None] = lambda task, module: None,
    on_probes: Callable[[int], None] = lambda total: None, **changes,
) -> RunResult:
    """Continue the run in ``folder`` from its newest checkpoint; ``changes`` are ``RESUMABLE`` options.

    Raises:
        ConfigError: no such run folder, a damaged checkpoint or results.json, or options that cannot change.
        RunEnded: as ``gimbench.run.run``.
    """
    folder = Path(folder)
    if world_from_env().distributed:
        raise ConfigError(RESUME_REFUSED)
    with RunLock(folder):  # held until the run ends: one writer per run folder
        state = checkpoint.load(folder)
        cfg = resume_config(folder, state, changes)
        listeners = Listeners(on_start, on_step, on_probe, on_probes)
        return Run(cfg, listeners, state=state, folder=folder).execute()
