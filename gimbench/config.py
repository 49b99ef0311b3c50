"""The run configuration: one dataclass, validated with errors that name the flag.

``RunConfig`` holds what the user asked for (``None`` = choose for me); ``resolve`` turns it into a
fully specified config for a device (preset, depth, batch size, context filled in) or raises
``ConfigError`` with a one-line message naming the flag and the allowed values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from gimbench.distributed.world import world_from_env
from gimbench.models import MAX_DEPTH, MODALITIES, REFERENCE_DEPTH, sequence_lengths
from gimbench.models.presets import PRESETS
from gimbench.sizes import parse_size

GIM_MODES = ("per-module", "summed", "sequential", "module-parallel")
GIM_MODE_HELP = {
    "per-module": "each module's forward, loss, backward and step before the next; its graph freed at once",
    "summed": "the reference schedule: every module's loss summed, one backward (all graphs alive at it)",
    "sequential": "one module trains at a time for its share of the steps; those below run without autograd",
    "module-parallel": "each process (--nproc) trains its own modules; batches flow rank to rank (--max-inflight)",
}
DEVICES = ("auto", "cpu", "cuda")
CONTEXTS = ("auto", "none", "pixelcnn")
TRAIN_SPLITS = ("auto", "unlabeled", "train")
# Training steps when --steps is not given: the budget at which the tiny preset's trained features
# clearly beat random ones at the last module on the embedded data. Audio: at 300 steps CPC's GRU was
# level with random features on the speaker probe (33.1 vs 32.5%), at 1000 it led by 2.5-11 points,
# at 2000 by 9-29 (GIM by 11-26) over seeds 0-2 (README: "Why audio's default is 2000 steps").
# Vision: at 300 steps (2,400 images) GIM and CPC were still below random features on the class
# probe, at 1000 they lead by 9 points.
DEFAULT_STEPS = {"audio": 2000, "vision": 1000}
LOCAL_GRADS = ("auto", "dense", "sparse")  # gimbench.strategies.sparse
SPLIT_RANKS = ("balanced", "count")  # module-parallel GIM: gimbench.distributed.balance
PIPELINES = ("none", "gpipe", "1f1b")  # end-to-end CPC pipelined over torchrun's processes (gimbench.distributed)
DEFAULT_MICRO_BATCHES = 4
MAX_STEPS = 10**7  # the step plan and history are lists of this length
MAX_SEED = 2**63 - 1  # torch seeds are 64-bit
MAX_LR = 1e30  # Adam divides lr by 1 - beta1 (0.1) at the first step; above ~3e37 that overflows float32


class ConfigError(ValueError):
    """A user mistake in the configuration; its message is one line, naming the flag."""


def one_line(error: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an error as one line of at most ``limit`` characters, for a ConfigError's reason."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:limit]


@dataclass(frozen=True)
class RunConfig:
    """Every option of ``gimbench run``; field names are the flags with ``-`` as ``_``."""

    model: str = "gim"
    modality: str = "audio"
    depth: int | None = None  # None: the reference depth of the modality
    preset: str = "auto"  # auto: paper on CUDA, tiny on CPU
    gim_mode: str = "per-module"
    context: str = "auto"  # vision only: auto = pixelcnn for cpc, none for greedy methods
    steps: int | None = None  # None: the modality's default (DEFAULT_STEPS)
    warmup_steps: int = 5  # not measured
    profile_steps: int = 50  # timed steps, interleaved with as many unprofiled ones
    memory_steps: int = 2  # tensor-tracked steps (slow; never timed)
    batch_size: int | None = None  # None: the preset's
    lr: float | None = None  # None: the preset's (paper 2e-4 as in the reference; tiny 1e-3)
    seed: int = 0
    device: str = "auto"
    data: str = "synthetic"
    data_root: str | None = None
    train_split: str = "auto"  # vision: auto = unlabeled, or train for methods that train on labels
    workers: int = 0  # DataLoader worker processes; 0 reads batches in the training process
    out: str = "reports/runs"
    name: str | None = None  # None: <UTC timestamp>-<model>-<modality>-d<depth>
    overwrite: bool = False
    quiet: bool = False
    probe: bool = True  # linear probes on every module after training (--no-probe skips them)
    checkpoint_every: int = 0  # steps between checkpoints; 0: only at the end and when interrupted
    find_max_batch: bool = False  # search the largest batch within memory_budget, then train at it
    memory_budget: str | None = None  # e.g. "8GiB"; only with find_max_batch
    nproc: int = 1  # processes of the run; gimbench run --nproc N starts them with torchrun
    max_inflight: int = 2  # module-parallel GIM: batches a rank may run ahead of the next rank
    split_ranks: str = "balanced"  # module-parallel GIM: contiguous modules per rank by measured cost, or by count
    pipeline: str = "none"  # cpc under torchrun: pipeline the encoder over the processes with this schedule
    micro_batches: int | None = None  # pipelined cpc: micro-batches per step (None: DEFAULT_MICRO_BATCHES)
    local_grad: str = "auto"  # greedy audio conv modules: sparse local gradients where exact (auto: and cheaper)
    trace: bool = False  # write trace.json of one warm-up step (and a CUDA memory snapshot) into the run folder

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)


def recorded_config(recorded: object, source: str) -> RunConfig:
    """The ``RunConfig`` a results.json or checkpoint recorded (unknown keys ignored), or ``ConfigError``."""
    if not isinstance(recorded, dict):
        raise ConfigError(f"{source} records no run configuration")
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return RunConfig(**{k: v for k, v in recorded.items() if k in names})


def _choice(flag: str, value: object, allowed: tuple | list) -> None:
    if value not in allowed:
        raise ConfigError(f"{flag}: {value!r} is not one of {', '.join(map(str, allowed))}")


def _positive(flag: str, value: float | int) -> None:
    if value <= 0:
        raise ConfigError(f"{flag} must be positive, got {value}")


# The annotations (strings under ``from __future__ import annotations``) and the Python types they accept.
_TYPES = {"str": (str,), "str | None": (str, type(None)), "int": (int,), "int | None": (int, type(None)),
          "float | None": (int, float, type(None)), "bool": (bool,)}


def _check_types(cfg: RunConfig) -> None:
    """Values from files or the Python API must have their field's type (bool is not an int here)."""
    for f in dataclasses.fields(cfg):
        value, allowed = getattr(cfg, f.name), _TYPES.get(str(f.type))
        if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
            raise ConfigError(f"--{f.name.replace('_', '-')}: {value!r} has the wrong type (expected {f.type})")


def _check_numbers(cfg: RunConfig) -> None:
    if cfg.steps is not None:
        _positive("--steps", cfg.steps)
        if cfg.steps > MAX_STEPS:
            raise ConfigError(f"--steps must be at most {MAX_STEPS:,}, got {cfg.steps:,}")
    if cfg.lr is not None and not 0 < cfg.lr <= MAX_LR:
        raise ConfigError(f"--lr must be positive and at most {MAX_LR:g}, got {cfg.lr}")
    if cfg.batch_size is not None:
        _positive("--batch-size", cfg.batch_size)
    for flag, value in (("--warmup-steps", cfg.warmup_steps), ("--profile-steps", cfg.profile_steps),
                        ("--memory-steps", cfg.memory_steps), ("--checkpoint-every", cfg.checkpoint_every),
                        ("--workers", cfg.workers)):
        if value < 0:
            raise ConfigError(f"{flag} must be zero or more, got {value}")
    _positive("--nproc", cfg.nproc)
    _positive("--max-inflight", cfg.max_inflight)
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"--seed must be between 0 and 2**63-1, got {cfg.seed}")


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda' for a ``--device`` value."""
    _choice("--device", device, DEVICES)
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available on this machine (use --device cpu)")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _check_depth(cfg: RunConfig, depth: int, preset: str) -> None:
    if not 1 <= depth <= MAX_DEPTH:
        raise ConfigError(f"--depth must be between 1 and {MAX_DEPTH}, got {depth}")
    if cfg.modality == "audio":
        steps = PRESETS[preset]["audio"].prediction_steps
        if min(sequence_lengths(preset, depth)) <= steps:
            raise ConfigError(f"--depth {depth}: sequences become shorter than {steps} prediction steps")


def resolve(cfg: RunConfig, *, models: list[str], datasets: list[str]) -> RunConfig:
    """A copy of ``cfg`` with every ``auto``/``None`` filled in, or ``ConfigError``.

    Args:
        cfg: what the user asked for.
        models: registered model (strategy) names.
        datasets: registered dataset names.
    """
    _check_types(cfg)
    _choice("--model", cfg.model, models)
    _choice("--modality", cfg.modality, MODALITIES)
    _choice("--gim-mode", cfg.gim_mode, GIM_MODES)
    _choice("--preset", cfg.preset, ("auto", *PRESETS))
    _choice("--context", cfg.context, CONTEXTS)
    _choice("--data", cfg.data, datasets)
    _choice("--train-split", cfg.train_split, TRAIN_SPLITS)
    _choice("--pipeline", cfg.pipeline, PIPELINES)
    _choice("--local-grad", cfg.local_grad, LOCAL_GRADS)
    _choice("--split-ranks", cfg.split_ranks, SPLIT_RANKS)
    if cfg.train_split != "auto" and cfg.modality != "vision":
        raise ConfigError("--train-split applies to --modality vision (audio trains on its train split)")
    _check_numbers(cfg)
    if cfg.find_max_batch != (cfg.memory_budget is not None):
        raise ConfigError("--find-max-batch and --memory-budget go together: the search needs a budget, "
                          "and the budget is only used by the search")
    if cfg.memory_budget is not None:
        try:
            parse_size(cfg.memory_budget)
        except ValueError as e:
            raise ConfigError(f"--memory-budget: {e}") from None
    device = resolve_device(cfg.device)
    preset = cfg.preset if cfg.preset != "auto" else ("paper" if device == "cuda" else "tiny")
    depth = cfg.depth if cfg.depth is not None else REFERENCE_DEPTH[cfg.modality]
    if cfg.model == "mfcc":
        if cfg.modality != "audio":
            raise ConfigError("--model mfcc is an audio baseline; use --modality audio")
        if cfg.depth not in (None, 1):
            raise ConfigError("--depth: --model mfcc has one module (the MFCC front end); use --depth 1 or omit it")
        depth = 1
    _check_depth(cfg, depth, preset)
    steps = cfg.steps if cfg.steps is not None else DEFAULT_STEPS[cfg.modality]
    if cfg.gim_mode == "sequential" and cfg.model == "gim" and steps < depth:
        raise ConfigError(f"--gim-mode sequential needs --steps >= --depth ({depth}), got {steps}")
    context = cfg.context
    if context == "auto":
        context = "pixelcnn" if cfg.modality == "vision" and cfg.model == "cpc" else "none"
    if context == "pixelcnn" and cfg.modality != "vision":
        raise ConfigError("--context pixelcnn applies to --modality vision only (audio's context is the GRU)")
    spec = PRESETS[preset][cfg.modality]
    batch_size = cfg.batch_size or spec.batch_size
    micro_batches = spread_over_processes(cfg, depth, batch_size)
    return dataclasses.replace(cfg, device=device, preset=preset, depth=depth, context=context, steps=steps,
                               batch_size=batch_size, lr=cfg.lr or spec.lr, micro_batches=micro_batches)


def spread_over_processes(cfg: RunConfig, depth: int, batch_size: int) -> int | None:
    """Checks the options of modes that spread modules over processes; returns the resolved ``--micro-batches``.

    Module-parallel GIM and pipelined CPC need at least two processes (``--nproc``, or torchrun's world) and
    at most one per module; a pipeline cuts each batch into equal micro-batches.
    """
    if cfg.pipeline != "none" and cfg.model != "cpc":
        raise ConfigError("--pipeline applies to --model cpc (GIM spreads its modules with --gim-mode module-parallel)")
    if cfg.micro_batches is not None and cfg.pipeline == "none":
        raise ConfigError("--micro-batches applies to a pipelined run (--pipeline gpipe or 1f1b)")
    flag = f"--pipeline {cfg.pipeline}" if cfg.pipeline != "none" else (
        "--gim-mode module-parallel" if (cfg.model, cfg.gim_mode) == ("gim", "module-parallel") else None)
    if flag is None:
        return None
    world = world_from_env()
    size = world.size if world.distributed else cfg.nproc
    if size < 2:
        raise ConfigError(f"{flag} spreads the modules over processes: run it with --nproc N (N >= 2) or torchrun")
    if size > depth:
        raise ConfigError(f"{flag}: {size} processes cannot split {depth} modules (use --nproc <= --depth)")
    for option, value in (("--checkpoint-every", cfg.checkpoint_every), ("--find-max-batch", cfg.find_max_batch)):
        if value:
            raise ConfigError(f"{option} is not supported with {flag}")
    if cfg.pipeline == "none":
        return None
    micro = DEFAULT_MICRO_BATCHES if cfg.micro_batches is None else cfg.micro_batches
    _positive("--micro-batches", micro)
    if batch_size % micro:
        raise ConfigError(f"--micro-batches {micro} must divide the batch size ({batch_size})")
    if cfg.pipeline == "1f1b" and micro < size:
        raise ConfigError(f"--pipeline 1f1b needs --micro-batches >= the number of processes ({size}), got {micro}")
    return micro
