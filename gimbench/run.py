"""The Python API behind ``gimbench run``: ``run(RunConfig(...)) -> RunResult``.

Example:
    >>> from gimbench import RunConfig, run
    >>> result = run(RunConfig(model="gim", depth=6, steps=20))
    >>> result.step.time_ms
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from gimbench.config import RunConfig, resolve
from gimbench.data import DATASETS, make_source
from gimbench.environment import describe
from gimbench.models import Network, build_network
from gimbench.profiling.profile import Profiler, plan
from gimbench.results import (
    ModuleResult,
    RunResult,
    loss_summary,
    parameter_checksum,
    step_result,
    write_json_atomic,
)
from gimbench.runfolder import create_run_folder
from gimbench.strategies import STRATEGIES, make_strategy
from gimbench.trainer import StepRecord, Trainer


def resolve_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with every choice made, or ``ConfigError``."""
    return resolve(cfg, models=list(STRATEGIES), datasets=list(DATASETS))


def build(cfg: RunConfig) -> tuple[Network, object]:
    """The network and strategy of a resolved config, initialised from its seed."""
    strategy = make_strategy(cfg)
    torch.manual_seed(cfg.seed)
    network = build_network(
        modality=cfg.modality, preset=cfg.preset, depth=cfg.depth,
        heads_on=strategy.heads_on(cfg.depth), context=cfg.context,
    )
    return network, strategy


def save_checkpoint(path: Path, network: Network, optimizers: list, cfg: RunConfig, steps: int) -> None:
    """Model and optimizer state, loadable with ``torch.load(..., weights_only=True)``."""
    state = {
        "model": network.state_dict(),
        "optimizers": [None if o is None else o.state_dict() for o in optimizers],
        "config": cfg.to_dict(),
        "step": steps,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def module_results(network: Network, losses: list[list[float | None]], profiler: Profiler) -> list[ModuleResult]:
    """Per-module rows: name, owned parameter count, loss summary, time and memory."""
    return [
        ModuleResult(
            index=k, name=network.names[k], parameters=sum(p.numel() for p in network.owned_parameters(k)),
            loss=loss_summary([step[k] for step in losses]), **profiler.module_time(k), **profiler.module_memory(k),
        )
        for k in range(len(network))
    ]


def run(
    cfg: RunConfig, *, on_start: Callable[[RunConfig, Path], None] = lambda cfg, folder: None,
    on_step: Callable[[StepRecord], None] = lambda record: None,
) -> RunResult:
    """Train, measure and write a run folder; returns the result (also in ``<folder>/results.json``).

    Raises:
        ConfigError: for invalid options (the message names the flag).
    """
    cfg = resolve_config(cfg)
    started = time.perf_counter()
    source = make_source(cfg)
    network, strategy = build(cfg)
    folder = create_run_folder(cfg)
    on_start(cfg, folder)
    device = torch.device(cfg.device)
    # Gathering negatives backpropagates through an accumulating index_put, which multithreaded CPU
    # kernels sum in varying order; deterministic kernels make a seed reproduce the same parameters.
    torch.use_deterministic_algorithms(device.type == "cpu")
    trainer = Trainer(network, strategy, source, device, cfg.batch_size, cfg.seed, on_step=on_step)
    kinds = plan(cfg.steps, cfg.warmup_steps, cfg.profile_steps, cfg.memory_steps)
    profiler = Profiler(kinds, network, trainer.optimizers, device)
    trainer.meter_for = profiler.meter_for
    history = trainer.fit(cfg.steps)
    save_checkpoint(folder / "checkpoint.pt", network, trainer.optimizers, cfg, cfg.steps)
    result = RunResult(
        status="complete", memory_backend=profiler.backend, config=cfg.to_dict(), environment=describe(device),
        modules=module_results(network, history.losses, profiler),
        step=step_result(history, kinds, cfg.batch_size, profiler.step_memory()),
        final_parameter_checksum=parameter_checksum(network), wall_seconds=time.perf_counter() - started,
        folder=str(folder),
    )
    write_json_atomic(folder / "results.json", result.to_json())
    return result
