"""The Python API behind ``gimbench run``: ``run(RunConfig(...)) -> RunResult``.

Example:
    >>> from gimbench import RunConfig, run
    >>> result = run(RunConfig(model="gim", depth=6, steps=20))
    >>> result.step.time_ms
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from gimbench.config import ConfigError, RunConfig, resolve
from gimbench.data import DATASETS, make_source
from gimbench.environment import describe
from gimbench.models import Network, build_network
from gimbench.probe import probe
from gimbench.profiling.profile import Profiler, plan
from gimbench.results import (
    ModuleResult,
    RunResult,
    loss_summary,
    parameter_checksum,
    read_results,
    step_result,
    write_json_atomic,
)
from gimbench.runfolder import create_run_folder
from gimbench.strategies import STRATEGIES, Strategy, make_strategy
from gimbench.trainer import StepRecord, Trainer


def resolve_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with every choice made, or ``ConfigError``."""
    return resolve(cfg, models=list(STRATEGIES), datasets=list(DATASETS))


def network_for(cfg: RunConfig, strategy: Strategy, classes: int = 0) -> Network:
    """The network of a resolved config and its strategy, initialised from the seed; ``classes`` is
    the number of training labels, used by supervised methods' heads."""
    torch.manual_seed(cfg.seed)
    return build_network(
        modality=cfg.modality, preset=cfg.preset, depth=cfg.depth, heads_on=strategy.heads_on(cfg.depth),
        context=cfg.context, classes=classes if strategy.needs_labels else 0, encoder=strategy.encoder,
    )


def build(cfg: RunConfig, classes: int = 0) -> tuple[Network, Strategy]:
    """The network and strategy of a resolved config."""
    strategy = make_strategy(cfg)
    return network_for(cfg, strategy, classes), strategy


def probe_results(network: Network, source, device: torch.device, seed: int, on_probe) -> dict:
    """The ``probe`` block of results.json: every task of the dataset on every module."""
    results = probe(network, source.probe_tasks(), device, seed=seed, on_module=on_probe)
    return {task: asdict(result) for task, result in results.items()}


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
    on_probe: Callable[[str, int], None] = lambda task, module: None, on_try: Callable = lambda t: None,
) -> RunResult:
    """Train, measure, probe and write a run folder; returns the result (also in ``<folder>/results.json``).

    ``on_start`` hears the resolved config and folder, ``on_step`` every training step, ``on_probe``
    every (task, module) probe as it starts, ``on_try`` every batch size tried by ``find_max_batch``
    (the run then trains at the batch size found, whatever ``batch_size`` says).

    Raises:
        ConfigError: for invalid options (the message names the flag).
    """
    cfg = resolve_config(cfg)
    started = time.perf_counter()
    max_batch = None
    if cfg.find_max_batch:
        from gimbench.maxbatch import find_max_batch  # imports this module's network_for

        max_batch = find_max_batch(cfg, on_try)
        cfg = replace(cfg, batch_size=max_batch.batch_size)
    strategy = make_strategy(cfg)
    source = make_source(cfg, labelled=strategy.needs_labels)
    network = network_for(cfg, strategy, source.num_classes)
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
    checksum = parameter_checksum(network)
    probes = probe_results(network, source, device, cfg.seed, on_probe) if cfg.probe else {}
    result = RunResult(
        status="complete", memory_backend=profiler.backend, config=cfg.to_dict(), environment=describe(device),
        modules=module_results(network, history.losses, profiler),
        step=step_result(history, kinds, cfg.batch_size, profiler.step_memory()),
        final_parameter_checksum=checksum, wall_seconds=time.perf_counter() - started, folder=str(folder),
        probe=probes, max_batch=max_batch,
    )
    write_json_atomic(folder / "results.json", result.to_json())
    return result


def load_checkpoint(folder: Path) -> dict:
    """A run folder's checkpoint, loaded with ``weights_only=True``, or ``ConfigError``."""
    path = Path(folder) / "checkpoint.pt"
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: the run has no checkpoint") from None
    except Exception as e:  # any unpickling or zip error means a damaged file, not a bug of ours
        raise ConfigError(f"{path} is damaged or not a gimbench checkpoint ({type(e).__name__}: {e})") from None


def probe_saved_run(
    folder: Path, *, device: str = "auto", on_probe: Callable[[str, int], None] = lambda task, module: None
) -> dict:
    """Re-run the probes of a saved run from its checkpoint; updates and returns its results.json."""
    doc = read_results(folder)
    known = {f.name for f in fields(RunConfig)}
    cfg = resolve_config(RunConfig(**{k: v for k, v in doc["config"].items() if k in known} | {"device": device}))
    strategy = make_strategy(cfg)
    source = make_source(cfg, labelled=strategy.needs_labels)
    network = network_for(cfg, strategy, source.num_classes)
    try:
        network.load_state_dict(load_checkpoint(folder)["model"])
    except (KeyError, RuntimeError) as e:
        raise ConfigError(f"{folder}/checkpoint.pt does not match the run's configuration ({e})") from None
    target = torch.device(cfg.device)
    doc["probe"] = probe_results(network.to(target), source, target, cfg.seed, on_probe)
    write_json_atomic(Path(folder) / "results.json", doc)
    return doc
