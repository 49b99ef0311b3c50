"""The results contract (``results.json``): dataclasses that serialise to the versioned JSON.

Keys keep their names and meaning across versions; later capabilities add fields.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import nn

from gimbench.errors import ConfigError
from gimbench.profiling.profile import ratio_interval
from gimbench.results.atomic import write_atomic
from gimbench.results.schemas import RESULTS, read

SCHEMA = "gimbench.run/1"
RENDERERS: dict[str, Callable] = {}  # "run": RunResult -> a rich renderable (gimbench.report.terminal)
MIB = 2**20


@dataclass(frozen=True)
class Failure:
    """Why a run ended early: results.json's ``failure`` block is ``reason``, ``message``, ``step`` and what the
    reason adds (``details``: the module and phase, the signal, the path that could not be written, ...)."""

    reason: str  # "non-finite-loss", "out-of-memory", "interrupted", "write-failed", "peer-lost", "workers-failed"
    message: str  # one line for the user (an interrupted run's adds the resume command on a second)
    step: int  # steps completed before it
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"reason": self.reason, "message": self.message, "step": self.step, **self.details}


@dataclass(frozen=True)
class RankRow:
    """One rank's row of results.json's ``distributed`` block: its own step and module measurements, and what
    its distributed mode adds (``extras``: the module split, the compute / transfer / waiting shares)."""

    rank: int
    device: str
    modules: list[int]  # the indices of the modules it trains
    step: StepResult
    module_rows: list[ModuleResult]
    idle_fraction: float | None  # share of its step wall time not computing
    extras: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"rank": self.rank, "device": self.device, "modules": self.modules, "step": step_json(self.step),
                "module_rows": [asdict(m) for m in self.module_rows], "idle_fraction": self.idle_fraction,
                "samples_per_s": self.step.samples_per_second, **self.extras}


@dataclass
class Try:
    """One batch size tried: its measured step peak (None where CUDA ran out of memory)."""

    batch_size: int
    peak_bytes: int | None
    fits: bool

    def __str__(self) -> str:
        peak = "out of memory" if self.peak_bytes is None else f"step peak {self.peak_bytes / MIB:.1f} MiB"
        return f"batch size {self.batch_size}: {peak}, {'fits' if self.fits else 'does not fit'}"


@dataclass
class MaxBatch:
    """The search's answer; ``results.json``'s ``max_batch`` block."""

    budget_bytes: int
    batch_size: int
    peak_bytes: int
    backend: str
    tried: list[Try] = field(default_factory=list)

    @classmethod
    def from_json(cls, doc: dict) -> MaxBatch:
        """The block as ``asdict`` wrote it (results.json, a checkpoint)."""
        return cls(**{**doc, "tried": [Try(**t) for t in doc["tried"]]})



@dataclass
class ModuleResult:
    """One gradient-isolated module (with its head, if it has one)."""

    index: int
    name: str
    parameters: int
    loss: dict  # {"first": float|None, "last": float|None, "history": [float|None, ...]}
    time_ms: dict | None = None  # median ms per phase and "total", over timed steps
    time_ms_iqr: dict | None = None
    timed_steps: int = 0
    memory: dict | None = None  # peak and its breakdown, over memory-tracked steps
    local_grad: str | None = None  # "sparse" or "dense": how the module's local gradient was computed
    flops: int | None = None  # forward + loss + backward FLOPs, counted on one warm-up step (profiling/flops.py)
    flops_by_phase: dict | None = None  # {"forward", "loss", "backward"}: the same count per phase
    achieved_flops_per_s: float | None = None  # flops / median time of those phases over timed steps
    flops_fraction: float | None = None  # achieved_flops_per_s / environment.reference_flops_per_s


@dataclass
class StepResult:
    """Whole-step figures. Times are medians (wall clock after a device sync), spreads are IQRs."""

    time_ms: float | None  # timed steps (timers running); unprofiled steps if there were none; None: neither
    time_ms_unprofiled: float | None  # steps that ran no meter at all
    timer_overhead: float | None  # time_ms / time_ms_unprofiled - 1
    samples_per_second: float | None  # from unprofiled steps where there are any
    time_ms_iqr: float | None
    data_ms: float | None  # median wait for the next batch (not part of time_ms)
    timed_steps: int
    unprofiled_steps: int
    memory: dict = field(default_factory=dict)  # peak, resident, floor, cross-checks (flattened in JSON)
    data_wait_ms: dict = field(default_factory=dict)  # {"median", "mean", "max", "share"} (see data_wait)
    time_note: str | None = None  # where the step times are not from timed steps: what they are from, or why none
    timer_overhead_interval: list[float] | None = None  # 95% bootstrap interval of timer_overhead (holds 0: noise)
    flops: int | None = None  # the modules' forward + loss + backward FLOPs, summed (one counted warm-up step)
    achieved_flops_per_s: float | None = None  # flops / median time of every module's forward, loss and backward
    flops_fraction: float | None = None  # achieved_flops_per_s / environment.reference_flops_per_s
    flops_note: str | None = None  # what the FLOP figures were measured on, or why there are none


@dataclass
class RunResult:
    """Everything a run reports; ``to_json`` is the content of results.json."""

    status: str
    memory_backend: str
    config: dict
    environment: dict
    modules: list[ModuleResult]
    step: StepResult
    final_parameter_checksum: str
    wall_seconds: float
    folder: str
    probe: dict = field(default_factory=dict)  # task -> {"per_module", "chance", ...}; {} with --no-probe
    data: dict = field(default_factory=dict)  # dataset, workers, what training drew from, "skipped"
    failure: dict | None = None  # why a run is "interrupted" or "failed": {"reason", "message", "step", ...}
    steps_completed: int | None = None  # training steps done (config.steps is the target)
    resume_command: str | None = None  # for an interrupted run: the command that continues it
    sessions: list[dict] = field(default_factory=list)  # {"start_step", "end_step", "wall_seconds", ...}
    max_batch: MaxBatch | None = None  # with --find-max-batch; null in JSON without it
    distributed: dict | None = None  # under torchrun: world size, backend, mode and every rank's row; else null
    probe_checkpoint: dict | None = None  # set by `gimbench probe`: {"file", "step"} of the checkpoint it probed
    trace: dict | None = None  # with --trace: {"file", "step", "events", "memory_snapshot", ...}; else null
    memory_timeline: dict | None = None  # the peak memory step over time: {"csv", "png", "spans", ...}; or null

    def __rich__(self):
        """The run summary, as the report layer renders it (it registers its renderer in ``RENDERERS`` when it
        loads: results sit below the layer that draws them)."""
        return RENDERERS["run"](self)

    def to_json(self) -> dict:
        """The results.json document."""
        body = asdict(self)
        body.pop("folder")
        body["step"] = step_json(self.step)
        return {"schema": SCHEMA, **body}


def step_json(step: StepResult) -> dict:
    """A ``step`` block as results.json holds it (the memory figures flattened into it)."""
    body = asdict(step)
    memory = body.pop("memory")
    return body | memory


def loss_summary(history: list[float | None]) -> dict:
    """First and last computed loss of one module, and its whole history."""
    seen = [v for v in history if v is not None]
    return {"first": seen[0] if seen else None, "last": seen[-1] if seen else None, "history": history}


def step_result(history, kinds: list[str], batch_size: int, memory: dict) -> StepResult:
    """Step figures from the trainer's history and the kind of every step. Times come from timed steps, else
    from unprofiled ones (``time_note`` says so); never from warm-up or memory-tracked steps: with neither,
    they are ``None`` and ``time_note`` says why."""
    timed = [t for t, k in zip(history.seconds, kinds, strict=True) if k == "timed"]
    plain = [t for t, k in zip(history.seconds, kinds, strict=True) if k == "plain"]
    measured = timed or plain
    if not measured:
        note = (f"no step was timed: the {len(kinds)} steps run were all warm-up or memory-tracked"
                if kinds else "no training step ran")
        wait = data_wait(history, kinds) if history.seconds else {}
        data_ms = wait.get("median")
        return StepResult(None, None, None, None, None, data_ms, 0, 0, memory, wait, note)
    data = [t for t, k in zip(history.data_seconds, kinds, strict=True) if k != "warmup"] or history.data_seconds
    median = statistics.median(measured)
    q = statistics.quantiles(measured, n=4) if len(measured) > 1 else [median] * 3
    unprofiled = statistics.median(plain) if plain else None
    return StepResult(
        time_ms=median * 1e3, time_ms_unprofiled=None if unprofiled is None else unprofiled * 1e3,
        timer_overhead=median / unprofiled - 1 if timed and unprofiled else None,
        samples_per_second=batch_size / (unprofiled or median), time_ms_iqr=(q[2] - q[0]) * 1e3,
        data_ms=statistics.median(data) * 1e3, timed_steps=len(timed), unprofiled_steps=len(plain), memory=memory,
        data_wait_ms=data_wait(history, kinds),
        time_note=None if timed else f"no timed step: the times are those of {len(plain)} unprofiled steps",
        timer_overhead_interval=None if (interval := ratio_interval(timed, plain)) is None else list(interval),
    )


def data_wait(history, kinds: list[str]) -> dict:
    """Waiting for batches over the steps after warm-up: median, mean and max ms per step, and ``share``, the
    fraction of those steps' wall time (wait + step) spent waiting: near 0 when loading keeps up."""
    pairs = [(d, t) for d, t, k in zip(history.data_seconds, history.seconds, kinds, strict=True) if k != "warmup"]
    pairs = pairs or list(zip(history.data_seconds, history.seconds, strict=True))
    waits = [d for d, _ in pairs]
    return {"median": statistics.median(waits) * 1e3, "mean": statistics.fmean(waits) * 1e3, "max": max(waits) * 1e3,
            "share": sum(waits) / sum(d + t for d, t in pairs)}


def parameter_checksum(network: nn.Module) -> str:
    """sha256 over every parameter's name and bytes, in registration order."""
    digest = hashlib.sha256()
    for name, p in network.named_parameters():
        digest.update(name.encode())
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def read_results(folder: Path) -> dict:
    """A run folder's results.json, checked against its schema (``gimbench.results.schemas``), or
    ``ConfigError`` saying in one line what is wrong with it."""
    path = Path(folder) / "results.json"
    try:
        return read(path, RESULTS, "a gimbench run result")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: is {folder} a gimbench run folder?") from None


def write_json_atomic(path: Path, document: dict) -> None:
    """Write ``document`` so that ``path`` holds either the old file or the whole new one."""
    write_atomic(path, lambda f: f.write(json.dumps(document, indent=2).encode()))
