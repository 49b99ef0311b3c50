"""The Python API behind ``gimbench run``: ``run(RunConfig(...)) -> RunResult``.

Example:
    >>> from gimbench import RunConfig, run
    >>> result = run(RunConfig(model="gim", depth=6, steps=20))
    >>> result.step.time_ms
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import torch

from gimbench.config import ConfigError, RunConfig, one_line, recorded_config, resolve
from gimbench.distributed.runtime import Runtime
from gimbench.distributed.world import world_from_env
from gimbench.models import Network, register_make
from gimbench.probe import probe
from gimbench.profiling.floor import alone_peaks
from gimbench.profiling.flops import reference_rate, reference_size
from gimbench.profiling.profile import Profiler, plan
from gimbench.profiling.timeline import Timeline
from gimbench.profiling.trace import trace_block, trace_meter, with_trace
from gimbench.results.atomic import WriteError
from gimbench.results.schema import (
    Failure,
    MaxBatch,
    ModuleResult,
    RankRow,
    RunResult,
    loss_summary,
    parameter_checksum,
    read_results,
    step_result,
    write_json_atomic,
)
from gimbench.results.timeline import timeline_block
from gimbench.runs import checkpoint
from gimbench.runs.build import build, network_for
from gimbench.runs.environment import describe
from gimbench.runs.failures import (
    Locator,
    RunEnded,
    interrupted,
    is_out_of_memory,
    non_finite,
    out_of_memory,
    worker_start_refused,
    workers_failed,
    write_failed,
)
from gimbench.runs.folder import RunLock, create_run_folder
from gimbench.runs.maxbatch import find_max_batch
from gimbench.runs.processes import processes_for
from gimbench.runs.session import Session
from gimbench.runs.stopping import Interrupted, StopSignals
from gimbench.runs.timeline import write_timeline
from gimbench.strategies import spec_of
from gimbench.trainer import NonFiniteLoss, Parts, StepRecord, Trainer


def resolve_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` resolved for the processes this one belongs to (torchrun's world, or itself), or ``ConfigError``."""
    return resolve(cfg, world_from_env().size)


def probe_results(network: Network, source, device: torch.device, seed: int, on_probe,
                  on_probes: Callable[[int], None] = lambda total: None) -> dict:
    """The ``probe`` block of results.json: every task of the dataset on every module; ``on_probes`` hears how
    many (task, module) probes will run before the first starts."""
    tasks = source.probe_tasks()
    on_probes(len(tasks) * len(network))
    results = probe(network, tasks, device, seed=seed, on_module=on_probe)
    return {task: asdict(result) for task, result in results.items()}


def data_block(cfg: RunConfig, source) -> dict:
    """results.json's ``data``: the dataset, loader workers, what training drew from, and every skip."""
    return {"name": cfg.data, "workers": cfg.workers, **source.describe(), "skipped": source.skips.to_json()}


def module_results(network: Network, losses: list[list[float | None]], profiler: Profiler,
                   local_grads: list[str] | None = None) -> list[ModuleResult]:
    """Per-module rows: name, owned parameter count, loss summary, time and memory, and how its local gradient
    was computed (``local_grads``, the strategy's)."""
    return [
        ModuleResult(
            index=k, name=network.names[k], parameters=sum(p.numel() for p in network.owned_parameters(k)),
            loss=loss_summary([step[k] for step in losses]), **profiler.module_time(k), **profiler.module_memory(k),
            local_grad=local_grads[k] if local_grads else None, **profiler.module_flops(k),
        )
        for k in range(len(network))
    ]


@dataclass(frozen=True)
class Listeners:
    """What the caller of a run hears: the resolved config and folder, every step, the probes."""

    on_start: Callable[[RunConfig, Path], None] = lambda cfg, folder: None
    on_step: Callable[[StepRecord], None] = lambda record: None
    on_probe: Callable[[str, int], None] = lambda task, module: None
    on_probes: Callable[[int], None] = lambda total: None


def run(
    cfg: RunConfig, *, on_start: Callable[[RunConfig, Path], None] = lambda cfg, folder: None,
    on_step: Callable[[StepRecord], None] = lambda record: None,
    on_probe: Callable[[str, int], None] = lambda task, module: None, on_try: Callable = lambda t: None,
    on_probes: Callable[[int], None] = lambda total: None, network: str | Callable[[], object] | None = None,
) -> RunResult:
    """Train, measure, probe and write a run folder; returns the result (also in ``<folder>/results.json``).

    ``on_start`` hears the resolved config and folder, ``on_step`` every training step, ``on_probe``
    every (task, module) probe as it starts (``on_probes`` their number, before the first),
    ``on_try`` every batch size tried by ``find_max_batch`` (the run then trains at the batch size found).
    ``network`` trains your own network instead of ``cfg.network``: a function ``make()`` returning (layers, input
    shape), as ``--network file.py:make`` names one (recorded as ``module:function``), or such a name.

    Raises:
        ConfigError: for invalid options (the message names the flag).
        RunEnded: when a signal stopped the run or it failed (NaN loss, out of memory); its results
            are written with status "interrupted" or "failed" before this is raised.
    """
    if network is not None:
        cfg = replace(cfg, network=network if isinstance(network, str) else register_make(network))
    cfg = resolve_config(cfg)
    started, max_batch = time.perf_counter(), None
    if cfg.find_max_batch:
        max_batch = find_max_batch(cfg, on_try)
        cfg = replace(cfg, batch_size=max_batch.batch_size)
    listeners = Listeners(on_start, on_step, on_probe, on_probes)
    return Run(cfg, listeners, started=started, max_batch=max_batch).execute()


class Run:
    """One run in this process, phase by phase: build, fit, gather, probe, write.

    From scratch into a new folder, or from a checkpoint ``state`` in ``folder`` (a resume). ``started`` is when
    the run began (before a batch-size search), ``max_batch`` that search's answer. Under torchrun every rank
    runs one; where they differ is the ``processes`` object's business (``gimbench.runs.processes``).
    """

    def __init__(self, cfg: RunConfig, listeners: Listeners, *, state: dict | None = None,
                 folder: Path | None = None, started: float | None = None, max_batch: MaxBatch | None = None) -> None:
        self.started = time.perf_counter() if started is None else started
        self.cfg, self.listeners, self.state, self.folder, self.max_batch = cfg, listeners, state, folder, max_batch
        self.processes = processes_for(cfg, world_from_env())
        self.session: Session | None = None

    def execute(self) -> RunResult:
        cfg, processes = self.cfg, self.processes
        with processes.joined():
            parts = processes.parts(cfg, partial(build, device=processes.device))
            created = self.folder is None
            folder = self.folder or processes.create_folder(lambda: create_run_folder(cfg))
            # One writer per run folder (a resume holds its lock already; under torchrun rank 0 writes for all).
            # From here on a signal ends the run with a checkpoint instead of killing it.
            lock = RunLock(folder) if created and processes.main else contextlib.nullcontext()
            with lock, StopSignals(announce=processes.main) as stop:
                session = self.session = self.make_session(parts, folder, stop)
                if self.state is not None:
                    session.restore(self.state)
                self.listeners.on_start(cfg, folder)
                return self.finish_training(stop)

    def make_session(self, parts: Parts, folder: Path, stop: StopSignals) -> Session:
        """The trainer, profiler and tracer of the run's parts, in a session that checkpoints them."""
        cfg, processes, network = self.cfg, self.processes, parts.network
        kinds = plan(cfg.steps, cfg.warmup_steps, cfg.profile_steps, cfg.memory_steps,
                     trains=lambda step: parts.strategy.trained_at(step, len(network)))
        floor = None if processes.distributed else \
            partial(alone_peaks, parts.strategy.train_alone, network, parts.optimizers, device=parts.device,
                    cast=parts.strategy.precision.cast)
        reference = reference_rate(parts.device, reference_size(cfg.preset))
        profiler = Profiler(kinds, network, parts.optimizers, parts.device, measure_floor=floor,
                            distributed=processes.distributed, count_flops=True,
                            reference_flops_per_s=reference["reference_flops_per_s"])
        tracer = trace_meter(kinds, folder, network.names, parts.device) if cfg.trace and processes.main else None
        self.locator = Locator()
        meter_for = with_trace(profiler.meter_for, tracer)
        trainer = Trainer(parts, cfg.batch_size, cfg.seed, workers=cfg.workers,
                          meter_for=lambda step: self.locator.around(meter_for(step)),
                          should_stop=processes.stop_rule(stop, parts), after_batch=profiler.after_step,
                          on_step=self.stepped)
        return Session(cfg, folder, trainer, profiler, describe(parts.device) | reference, self.started,
                       max_batch=self.max_batch, writes=processes.main, tracer=tracer)

    def stepped(self, record: StepRecord) -> None:
        self.listeners.on_step(record)
        self.session.after_step()

    def finish_training(self, stop: StopSignals) -> RunResult:
        """Train, checkpoint, probe and write results.json, turning signals and failures into results."""
        session, processes, cfg = self.session, self.processes, self.cfg
        trainer = session.trainer
        failure = self.fit()
        if failure is None:
            whole, failure = processes.after_fit(
                trainer, lambda: network_for(cfg, spec_of(cfg), trainer.source.num_classes, trainer.network.layers))
            if whole is not None:
                session.adopt(whole)
        if failure is None:
            failure = written(session, session.save)
        if failure is None and stop.signal is not None and trainer.step < cfg.steps:
            failure = stopped(session, stop)
        distributed, failure = processes.gather(partial(rank_row, session), failure, trainer.step)
        if failure is not None or not processes.main:
            farewell = processes.farewell if processes.ends_together(failure) else None
            return finish(session, failure, distributed=distributed, farewell=farewell)
        try:
            probes = (probe_results(session.network, trainer.source, trainer.device, cfg.seed,
                                    stop.checked(self.listeners.on_probe), self.listeners.on_probes)
                      if cfg.probe else {})
        except Interrupted:
            return finish(session, stopped(session, stop), distributed=distributed)
        return finish(session, None, probes, distributed)

    def fit(self) -> Failure | None:
        """Train to the configured steps; a NaN/Inf loss, an out-of-memory error or (under torchrun) a lost peer
        becomes a failure record."""
        session = self.session
        trainer, names = session.trainer, session.trainer.network.names
        try:
            trainer.fit(session.cfg.steps)
        except NonFiniteLoss as e:
            return non_finite(e, names, session.checkpoint_step, session.folder)
        except WriteError as e:  # a periodic checkpoint: the one before it is intact
            return write_failure(session, e)
        except Exception as e:
            if (lost := self.processes.failure_of(e, trainer.step)) is not None:
                return lost
            if worker_start_refused(e, session.cfg.workers):
                return workers_failed(e, session.cfg.workers, trainer.step)
            if not is_out_of_memory(e):
                raise
            return out_of_memory(e, self.locator.where, names, trainer.step, session.cfg.batch_size,
                                 session.profiler)
        return None


def rank_row(session: Session, runtime: Runtime) -> RankRow:
    """This rank's row of results.json's ``distributed`` block: its own step and module measurements."""
    trainer, profiler, cfg = session.trainer, session.profiler, session.cfg
    local = runtime.engine.local_batch(cfg, runtime.world)
    step = replace(step_result(trainer.history, profiler.kinds[:trainer.step], local, profiler.step_memory()),
                   **profiler.step_flops())
    modules = runtime.engine.modules(trainer, runtime.world)
    grads = trainer.strategy.local_grads(trainer.network)
    rows = [m for m in module_results(trainer.network, trainer.history.losses, profiler, grads) if m.index in modules]
    return runtime.row(step, rows, modules, trainer)


def owners_rows(rows: list[ModuleResult], distributed: dict | None) -> list[ModuleResult]:
    """Each module's row as the first rank that trains it measured it (``rows``, rank 0's, where no rank's
    row is at hand): under module-parallel GIM or a pipeline, module k's row comes from the rank holding it."""
    owned = {}
    for rank in (distributed or {}).get("ranks", []):
        for row in rank["module_rows"]:
            owned.setdefault(row["index"], row)
    return [ModuleResult(**owned[m.index]) if m.index in owned else m for m in rows]


def resume_command(session: Session) -> str | None:
    """The command that continues the run (``None`` for runs of several processes, which cannot be resumed)."""
    folder = str(Path(session.folder).absolute())
    return shlex.join(["gimbench", "run", "--resume", folder]) if session.cfg.nproc == 1 else None


def write_failure(session: Session, error: WriteError) -> Failure:
    """The failure record of a file the system refused to write, naming the last good checkpoint."""
    return write_failed(error, session.trainer.step, session.folder, session.checkpoint_step, resume_command(session))


def written(session: Session, write: Callable[[], None]) -> Failure | None:
    """Call ``write`` (a checkpoint, results.json); ``None``, or the failure record if the system refused it."""
    try:
        write()
    except WriteError as e:
        return write_failure(session, e)
    return None


def stopped(session: Session, stop: StopSignals) -> Failure:
    """The record of a run a signal stopped, with the command that resumes it."""
    return interrupted(stop.signal.name, session.trainer.step, session.cfg.steps, session.folder,
                       resume_command(session))


def finish(session: Session, failure: Failure | None, probes: dict | None = None,
           distributed: dict | None = None, farewell: Callable[[], None] | None = None) -> RunResult:
    """Write results.json over every session's steps (only rank 0 under torchrun), then call ``farewell``
    (every rank waits there for the others); raise ``RunEnded`` unless the run is complete."""
    trainer, profiler, cfg, network = session.trainer, session.profiler, session.cfg, session.network
    status = "complete" if failure is None else "interrupted" if failure.reason == "interrupted" else "failed"
    timeline = profiler.timeline() if session.writes else None
    sessions = session.sessions()
    result = RunResult(
        status=status, memory_backend=profiler.backend, config=cfg.to_dict(), environment=session.environment,
        modules=owners_rows(module_results(network, trainer.history.losses, profiler,
                                           trainer.strategy.local_grads(network)), distributed),
        step=replace(step_result(trainer.history, profiler.kinds[:trainer.step], cfg.batch_size,
                                 profiler.step_memory()), **profiler.step_flops()),
        final_parameter_checksum=parameter_checksum(network),
        wall_seconds=sum(s["wall_seconds"] for s in sessions), folder=str(session.folder), probe=probes or {},
        failure=None if failure is None else failure.to_json(), steps_completed=trainer.step, sessions=sessions,
        resume_command=None if failure is None else failure.details.get("resume_command"),
        data=data_block(cfg, trainer.source),
        max_batch=session.max_batch, distributed=distributed,
        trace=trace_block(session.tracer) if cfg.trace and session.writes else None,
        memory_timeline=timeline_block(timeline, network.names),
    )
    unwritten = written(session, lambda: write_files(session.folder, timeline, result.to_json())) \
        if session.writes else None
    if farewell is not None:
        farewell()
    if unwritten is not None:
        raise RunEnded(replace(result, status="failed", failure=unwritten.to_json()), unwritten.message, 1)
    if failure is not None:
        code = 128 + signal.Signals[failure.details["signal"]] if status == "interrupted" else 1
        raise RunEnded(result, failure.message, code)
    return result


def write_files(folder: Path, timeline: Timeline | None, doc: dict) -> None:
    """The memory timeline's files, then results.json (whose block names them)."""
    write_timeline(folder, timeline, doc)
    write_json_atomic(folder / "results.json", doc)


def probe_saved_run(
    folder: Path, *, device: str = "auto", on_probe: Callable[[str, int], None] = lambda task, module: None,
    which: str = "latest",
) -> dict:
    """Re-run the probes of a saved run from its checkpoint; updates and returns its results.json.

    ``which`` is ``latest`` (checkpoint.pt, refused unless it holds the step results.json describes) or
    ``prev`` (checkpoint.prev.pt, whatever its step); results.json records which in ``probe_checkpoint``.
    """
    folder = Path(folder)
    read_results(folder)  # a folder that holds no run is named as such before any lock is tried
    with RunLock(folder):
        doc = read_results(folder)
        recorded = replace(recorded_config(doc.get("config"), f"{folder}/results.json"), device=device)
        cfg = resolve(recorded, recorded.nproc, recorded=True)
        parts = build(cfg)
        network = parts.network
        name = checkpoint.PREVIOUS if which == "prev" else checkpoint.LATEST
        state = checkpoint.described(folder, doc.get("steps_completed"), name)
        try:
            # Probes read the encoder alone, so only its keys must all be there: a checkpoint whose heads lack
            # state (written before the InfoNCE heads kept their generators) still probes.
            loaded = network.load_state_dict(state["model"], strict=False)
            wrong = [k for k in loaded.missing_keys + loaded.unexpected_keys if k.startswith("encoder.")]
            if wrong:
                raise RuntimeError(f"encoder keys missing or unexpected: {', '.join(wrong)}")
        except (KeyError, RuntimeError) as e:
            raise ConfigError(f"{folder}: the checkpoint does not match the run's configuration ({one_line(e)})") \
                from None
        doc["probe"] = probe_results(network, parts.source, parts.device, cfg.seed, on_probe)
        doc["probe_checkpoint"] = {"file": name, "step": state["step"]}
        write_json_atomic(folder / "results.json", doc)
    return doc
