"""The run configuration: one dataclass, validated with errors that name the flag.

``RunConfig`` holds what the user asked for (``None`` = choose for me); ``resolve`` turns it into a
fully specified config for a device and a number of processes (preset, depth, batch size, context filled
in) or raises ``ConfigError`` with a one-line message naming the flag and the allowed values. It is the
one place every option is checked: the CLI, the Python API, the launcher and resume all call it. What a
method allows it reads from the method's description (``gimbench.strategies.method``) and what a
dataset needs from the dataset registry, never from comparisons of names.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gimbench.data import DATASETS
from gimbench.device import available, total_memory
from gimbench.errors import ConfigError, one_line
from gimbench.models import (
    MAX_DEPTH,
    MODALITIES,
    PAPER_NETWORKS,
    REFERENCE_DEPTH,
    NetworkEntry,
    network_entry,
    sequence_lengths,
)
from gimbench.models.presets import PRESETS, AudioSpec, VisionSpec
from gimbench.strategies import STRATEGIES, MethodSpec, spec_of
from gimbench.strategies.local_heads import LOCAL_HEADS
from gimbench.strategies.precision import OPTIMIZERS, PRECISIONS

__all__ = ["ConfigError", "RunConfig", "module_count", "one_line", "parse_size", "recorded_config", "resolve"]
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
# Warm-up steps when --warmup-steps is not given, at most half of a run's steps: a short run (--steps 3) then
# still has steps after its warm-up to measure.
DEFAULT_WARMUP = 5
LOCAL_GRADS = ("auto", "dense", "sparse")  # gimbench.strategies.sparse
SPLITS = ("even", "balanced")  # --modules: gimbench.models.cuts
SPLIT_RANKS = ("balanced", "count")  # module-parallel GIM: gimbench.distributed.balance
DEFAULT_MICRO_BATCHES = 4
MAX_STEPS = 10**7  # the step plan and history are lists of this length
MAX_SEED = 2**63 - 1  # torch seeds are 64-bit
MAX_LR = 1e30  # Adam divides lr by 1 - beta1 (0.1) at the first step; above ~3e37 that overflows float32
# DataLoader worker processes per CPU core at most: each is a whole Python process (torch imported, its own
# prefetched batches) and past a few per core they only queue for the same cores; --workers 500 forked until
# the system's process limit refused one.
WORKERS_PER_CPU = 4
FLOAT_BYTES = 4


UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes in ``text``: KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024, a bare
    number is bytes; units are case-insensitive.

    Raises:
        ValueError: with a one-line message for anything else, or a size of zero bytes.
    """
    match = SIZE.fullmatch(str(text))
    unit = match.group(2).upper() if match else None
    if unit not in UNITS:
        raise ValueError(f"{text!r} is not a size; use e.g. 512MiB, 8GiB or 1.5GB "
                         f"(KB/MB/GB = powers of 1000, KiB/MiB/GiB = powers of 1024)")
    size = int(float(match.group(1)) * UNITS[unit])
    if size <= 0:
        raise ValueError(f"{text!r} is zero bytes; the budget must be larger")
    return size


# The argparse groups of the run options in --help, in this order; a flag's group is its field's metadata.
GROUPS = ("method", "model", "data", "profiling", "output", "scale-out", "recovery")


def option(default: object, group: str, help: str, *, choices: Callable[[], Sequence] | Sequence | None = None,
           metavar: str | None = None, note: str | None = None) -> Any:
    """A ``RunConfig`` field that is also a ``gimbench run`` flag: the metadata every command reads its flag from.

    Args:
        default: the field's default, which the command line leaves to the dataclass.
        group: its argparse group (one of ``GROUPS``).
        help: what it does, without its default (the command line adds that).
        choices: the allowed values, or a function giving them (a registry filled later, such as ``--pipeline``'s).
        metavar: the value's name in the help (default: the flag's name in capitals).
        note: what the default means, shown after it ("auto: cuda if available"); for ``None`` or a switch, the
            whole default as words.
    """
    assert group in GROUPS, group
    return dataclasses.field(default=default, metadata={"group": group, "help": help, "choices": choices,
                                                        "metavar": metavar, "note": note})


@dataclass(frozen=True)
class RunConfig:
    """Every option of ``gimbench run``; field names are the flags with ``-`` as ``_``, and each field's metadata
    (``option``) is its flag's group, help and choices: the command line, its docs and the sweep grid read them."""

    model: str = option("gim", "method", "training method; see gimbench list", choices=lambda: sorted(STRATEGIES))
    modality: str = option("auto", "model", "what the network reads: audio waves or images",
                           choices=("auto", *MODALITIES), note="the network's; audio where --network is auto")
    network: str = option("auto", "model", "the network: a registered one (gimbench list), or your own as "
                          "path/to/file.py:make or package.module:make, make() returning (layers, input shape); "
                          "docs/extending.md", metavar="NAME",
                          note="the modality's paper network, cpc-audio or gim-vision (mfcc for --model mfcc)")
    depth: int | None = option(None, "model", f"gradient-isolated modules, 1-{MAX_DEPTH}",
                               note="the reference, " + ", ".join(f"{m} {n}" for m, n in REFERENCE_DEPTH.items()))
    preset: str = option("auto", "model", "layer sizes: paper or tiny", choices=lambda: ("auto", *PRESETS),
                         note="paper on CUDA, tiny on CPU")
    gim_mode: str = option("per-module", "method", "greedy schedule, --model gim only; see gimbench list",
                           choices=lambda: list(STRATEGIES["gim"].variants))
    context: str = option("auto", "model", "vision context network on the top module", choices=CONTEXTS,
                          note="pixelcnn for cpc, none otherwise")
    steps: int | None = option(None, "model", "training steps",
                               note=", ".join(f"{n} {m}" for m, n in DEFAULT_STEPS.items()))
    warmup_steps: int | None = option(None, "profiling", "first steps, never measured",
                                      note=f"{DEFAULT_WARMUP}, at most half of --steps")
    profile_steps: int = option(50, "profiling", "timed steps, each next to an unprofiled one to show the timers' "
                                "cost")
    memory_steps: int = option(2, "profiling", "memory-tracked steps per module, each after the module has trained "
                               "once; slow, never timed")
    batch_size: int | None = option(None, "model", "examples per step", note="the preset's")
    lr: float | None = option(None, "model", "learning rate", note="the preset's for the --optimizer: adam and "
                              "adamw paper 2e-4 as in the reference, tiny 1e-3; sgd paper 1e-2, tiny 5e-2")
    seed: int = option(0, "model", "seed for initialisation and sampling")
    device: str = option("auto", "model", "where to train", choices=DEVICES, note="cuda if available")
    data: str = option("synthetic", "data", "dataset", choices=lambda: sorted(DATASETS),
                       note="embedded, generated in process")
    data_root: str | None = option(None, "data", "folder of a real dataset; see `gimbench data check`", note="none")
    train_split: str = option("auto", "data", "vision training images", choices=TRAIN_SPLITS,
                              note="unlabeled, or train for methods trained on labels")
    workers: int = option(0, "data", "data loader worker processes", note="read batches in the training process")
    out: str = option("reports/runs", "output", "folder that holds run folders")
    name: str | None = option(None, "output", "run folder name", note="<UTC time>-<model>-<modality>-d<depth>")
    overwrite: bool = option(False, "output", "replace an existing run folder of the same --name", note="refuse")
    quiet: bool = option(False, "output", "no progress bar, only the summary")
    probe: bool = option(True, "profiling", "skip the linear probes on every module after training", note="probe")
    checkpoint_every: int = option(0, "recovery", "write a checkpoint every N steps, keeping the last two",
                                   metavar="N", note="only at the end or on a stop")
    find_max_batch: bool = option(False, "profiling", "search the largest batch size whose measured step peak fits "
                                  "--memory-budget, then train at it")
    memory_budget: str | None = option(None, "profiling", "memory budget for --find-max-batch: e.g. 512MiB, 8GiB, "
                                       "1.5GB; KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024", note="none")
    nproc: int = option(1, "scale-out", "start N processes with torchrun (data parallel; or module-parallel with "
                        "--gim-mode module-parallel)", metavar="N")
    max_inflight: int = option(2, "scale-out", "module-parallel GIM: batches in flight between neighbouring ranks",
                               metavar="K")
    split_ranks: str = option("balanced", "scale-out", "module-parallel GIM: contiguous modules per rank, cut by "
                              "each module's step time measured once before training (balanced) or by module count",
                              choices=SPLIT_RANKS)
    pipeline: str = option("none", "scale-out", "cpc on several processes: pipeline the encoder over them with "
                           "torch.distributed.pipelining's GPipe or 1F1B schedule",
                           choices=lambda: list(STRATEGIES["cpc"].variants), note="data parallel")
    micro_batches: int | None = option(None, "scale-out", "pipelined cpc: micro-batches per batch; must divide it",
                                       metavar="M", note=str(DEFAULT_MICRO_BATCHES))
    local_grad: str = option("auto", "method", "greedy audio conv modules: sparse = gradients from only the output "
                             "positions the module's own loss reads (exact), dense = from every position; "
                             "docs/profiling.md", choices=LOCAL_GRADS,
                             note="sparse wherever exact, where it is also cheaper")
    trace: bool = option(False, "profiling", "write trace.json (Chrome/Perfetto) of one warm-up step with "
                         "per-module phases, and on CUDA memory_snapshot.pickle for memory_viz")
    checkpoint_activations: bool = option(False, "method", "cpc and supervised: recompute each module's activations "
                                          "in backward (torch.utils.checkpoint, non-reentrant) instead of keeping "
                                          "them; docs/memory-savers.md")
    accumulate: int = option(1, "method", "cpc and supervised: run each batch as M equal micro-batches, gradients "
                             "accumulated, negatives drawn per micro-batch; M must divide the batch; "
                             "docs/memory-savers.md", metavar="M")
    modules: int | None = option(None, "method", "greedy methods: cut the --depth layers into K contiguous "
                                 "gradient-isolated modules, each trained by its top layer's loss; docs/modules.md",
                                 metavar="K", note="one per layer")
    split: str = option("even", "method", "with --modules: even = by layer count, balanced = smallest largest "
                        "module's measured peak memory; docs/modules.md", choices=SPLITS)
    # The classifier heads of the methods trained on labels (gimbench.strategies.local_heads).
    local_head: str = option("linear", "method", "methods trained on labels: their classifier heads, linear = a "
                             "linear layer on pooled features, dgl = DGL's auxiliary net (1x1 convs, 2x2 pooling, "
                             "3-layer MLP; image feature maps only); docs/models.md", choices=LOCAL_HEADS)
    precision: str = option("fp32", "method", "arithmetic of each module's forward and loss: bf16/fp16 under "
                            "torch.autocast, parameters, gradients and optimizer state in fp32; fp16 with a "
                            "gradient scaler, CUDA only; docs/precision.md", choices=PRECISIONS)
    optimizer: str = option("adam", "method", "each module's optimizer: adam and adamw keep two moment buffers "
                            "per parameter, sgd (momentum 0.9) one; docs/precision.md", choices=OPTIMIZERS)

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)


def known_options(values: Mapping[str, object]) -> dict:
    """The entries of ``values`` that are ``RunConfig`` fields (argparse's own, or a newer results.json's, left out)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return {k: v for k, v in values.items() if k in names}


def config_from(values: Mapping[str, object]) -> RunConfig:
    """The ``RunConfig`` of the fields in ``values``; other keys are ignored, missing fields take their defaults."""
    return RunConfig(**known_options(values))


def recorded_config(recorded: object, source: str) -> RunConfig:
    """The ``RunConfig`` a results.json or checkpoint recorded (unknown keys ignored), or ``ConfigError``."""
    if not isinstance(recorded, dict):
        raise ConfigError(f"{source} records no run configuration")
    return config_from(recorded)


def flagged_fields() -> list[dataclasses.Field]:
    """``RunConfig``'s fields that are command-line flags (made with ``option``), in order."""
    return [f for f in dataclasses.fields(RunConfig) if "group" in f.metadata]


def choices(field: dataclasses.Field) -> list | None:
    """The values a run option allows, read now (a registry may have grown since import), or ``None``."""
    allowed = field.metadata["choices"]
    return list(allowed() if callable(allowed) else allowed) if allowed is not None else None


def _choice(flag: str, value: object, allowed: tuple | list) -> None:
    if value not in allowed:
        raise ConfigError(f"{flag}: {value!r} is not one of {', '.join(map(str, allowed))}")


def _check_choices(cfg: RunConfig) -> None:
    """Every option with choices (its field's metadata) holds one of them; the option that picks another method's
    variant is left to ``_refuse_options_not_applying``, which says what it applies to."""
    _choice("--model", cfg.model, sorted(STRATEGIES))
    others = {m.choice for m in STRATEGIES.values()} - {STRATEGIES[cfg.model].choice}
    for f in flagged_fields():
        if f.name not in others and choices(f) is not None:
            _choice(flag(f.name), getattr(cfg, f.name), choices(f))


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
        if value is not None and value < 0:
            raise ConfigError(f"{flag} must be zero or more, got {value}")
    _check_workers(cfg.workers)
    _positive("--nproc", cfg.nproc)
    _positive("--max-inflight", cfg.max_inflight)
    _positive("--accumulate", cfg.accumulate)
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"--seed must be between 0 and 2**63-1, got {cfg.seed}")


def max_workers() -> int:
    """The largest ``--workers`` this machine takes: ``WORKERS_PER_CPU`` per CPU core."""
    return WORKERS_PER_CPU * (os.cpu_count() or 1)


def _check_workers(workers: int) -> None:
    if workers > max_workers():
        raise ConfigError(f"--workers must be at most {max_workers()} ({WORKERS_PER_CPU} per CPU core of this "
                          f"machine's {os.cpu_count() or 1}), got {workers:,}")


def sample_bytes(spec: AudioSpec | VisionSpec, modality: str, preset: str, known: bool,
                 input_shape: tuple[int, ...] | None = None) -> tuple[int, int]:
    """Lower bounds on the bytes one sample of a batch occupies during a step, float32: its input (of
    ``input_shape``, by default the preset's crop), and (for the paper's networks, ``known``) the first layer's
    output with its gradient, which its backward holds at once (audio: conv1's channels x frames; vision: the
    patches and the stem's maps over them). Every method that trains them holds all of these together."""
    if input_shape is None:
        input_shape = (spec.crop_samples,) if modality == "audio" else (spec.crop, spec.crop)
    data = FLOAT_BYTES * math.prod(input_shape)
    if modality == "audio":
        return data, FLOAT_BYTES * 2 * spec.channels * sequence_lengths(preset, 1)[0] if known else 0
    side = (spec.crop - spec.patch) // spec.patch_stride + 1
    patches = side * side * spec.patch * spec.patch
    return data, FLOAT_BYTES * patches * 2 * (1 + spec.stem) if known else 0


def _check_batch_memory(cfg: RunConfig, spec: AudioSpec | VisionSpec, preset: str, input_shape: tuple[int, ...],
                        device: str, world_size: int, known: bool) -> None:
    """Refuse a ``--batch-size`` whose batch cannot fit in the device's memory (RAM on the CPU) even in the
    most favourable case (split over every process, the first layer over every micro-batch): such a run grows
    until the kernel kills it, with no message and no results."""
    batch, (data, first) = cfg.batch_size, sample_bytes(spec, cfg.modality, preset, known, input_shape)
    pieces = cfg.accumulate * (cfg.micro_batches or 1)
    need, have = batch * (data + first // pieces) // world_size, total_memory(device)
    if need > have:
        raise ConfigError(f"--batch-size {batch:,} needs at least {need / 2**30:,.1f} GiB for its input and first "
                          f"layer alone, more than the {have / 2**30:.1f} GiB of {device} memory of this machine; "
                          "use a smaller --batch-size or --find-max-batch")


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda' for a ``--device`` value."""
    _choice("--device", device, DEVICES)
    if device == "cuda" and not available("cuda"):
        raise ConfigError("--device cuda: no CUDA device is available on this machine (use --device cpu)")
    if device == "auto":
        return "cuda" if available("cuda") else "cpu"
    return device


def _network(cfg: RunConfig, spec: MethodSpec) -> str:
    """The network ``cfg`` trains: the one it names (registered, or the user's own), or by default the modality's
    paper network (the MFCC front end for a method that reads MFCC features)."""
    default = "mfcc" if spec.encoder == "mfcc" else PAPER_NETWORKS[cfg.modality]
    if cfg.network == "auto":
        return default
    entry = network_entry(cfg.network)
    if spec.encoder == "mfcc" and cfg.network != default:
        raise ConfigError(f"network {cfg.network!r}: --model {cfg.model} reads MFCC features, not a network")
    if entry.modality != cfg.modality:
        raise ConfigError(f"network {cfg.network!r} reads {entry.modality}; use --modality {entry.modality}")
    return cfg.network


def _check_depth(network: NetworkEntry, depth: int, preset: str) -> None:
    deepest = network.max_at(preset)
    if not 1 <= depth <= deepest:
        raise ConfigError(f"--depth must be between 1 and {deepest}, got {depth}")
    problem = network.depth_problem(preset, depth)
    if problem:
        raise ConfigError(f"--depth {depth}: {problem}")


def _check_budget(text: str, device: str) -> None:
    """A ``--memory-budget`` that parses; on the CPU the search's tries allocate for real, so one beyond the
    machine's memory is refused."""
    try:
        budget = parse_size(text)
    except ValueError as e:
        raise ConfigError(f"--memory-budget: {e}") from None
    ram = total_memory("cpu")
    if device == "cpu" and budget > ram:
        raise ConfigError(f"--memory-budget: {budget / 2**30:.1f} GiB is more than this machine's {ram / 2**30:.1f} "
                          "GiB of memory, which the CPU tries would allocate")


def flag(name: str) -> str:
    """The command-line flag of a RunConfig field: a switch whose default is on is given as ``--no-...``."""
    return ("--no-" if getattr(RunConfig, name) is True else "--") + name.replace("_", "-")


def method_options() -> dict[str, str]:
    """Every option that applies to some methods only, with what it applies to in words."""
    where: dict[str, list[str]] = {}
    for name, method in sorted(STRATEGIES.items()):
        if method.choice:
            where.setdefault(method.choice, []).append(f"--model {name}")
        for value, spec in method.variants.items():
            for option in spec.own_options():
                everywhere = all(option in s.own_options() for s in method.variants.values())
                where.setdefault(option, []).append(f"--model {name}" if everywhere or not method.choice else
                                                    spec.called or f"{flag(method.choice)} {value}")
    return {option: " or ".join(dict.fromkeys(what)) for option, what in where.items()}


def modality_of(cfg: RunConfig) -> str:
    """``--modality``, or where it is auto the network's (audio for the paper networks' default); ``ConfigError``
    for a network that is neither registered nor loads."""
    if cfg.modality != "auto":
        return cfg.modality
    return "audio" if cfg.network == "auto" else network_entry(cfg.network).modality


def applies(option: str, cfg: RunConfig) -> bool:
    """Whether ``option`` (a RunConfig field) means anything for ``cfg``'s model, variant and modality."""
    if option == "context":
        return modality_of(cfg) == "vision"
    method = STRATEGIES.get(cfg.model)
    if method is None:
        return True
    spec = method.variant(cfg)
    if option == "depth":
        return spec is None or spec.depth is None
    if option not in method_options():
        return True
    return spec is not None and option in method.options(cfg) or option == method.choice


def _refuse_options_not_applying(cfg: RunConfig) -> None:
    """An option set (away from its default) for a method it means nothing to is refused, not recorded."""
    for option, what in method_options().items():
        value = getattr(cfg, option)
        if value != getattr(RunConfig, option) and not applies(option, cfg):
            given = flag(option) if isinstance(value, bool) else f"{flag(option)} {value}"
            raise ConfigError(f"{given} applies to {what} only (this run is --model {cfg.model}); "
                              "drop it")


def _check_data(cfg: RunConfig, spec: MethodSpec) -> None:
    dataset = DATASETS[cfg.data]
    if dataset.modality is not None and cfg.modality != dataset.modality:
        raise ConfigError(f"--data {cfg.data} is a dataset of {dataset.modality}; use --modality {dataset.modality}")
    if dataset.needs_root and cfg.data_root is None:
        raise ConfigError(f"--data {cfg.data} needs --data-root PATH (see `gimbench data check --help`)")
    if not dataset.needs_root and cfg.data_root is not None:
        raise ConfigError(f"--data-root is for real datasets; --data {cfg.data} is generated in process")
    if cfg.train_split != "auto" and cfg.modality != "vision":
        raise ConfigError("--train-split applies to --modality vision (audio trains on its train split)")
    if cfg.train_split == "unlabeled" and not dataset.unlabeled:
        raise ConfigError(f"--train-split unlabeled: --data {cfg.data} has no unlabeled split; use train or auto")
    if cfg.train_split == "unlabeled" and spec.needs_labels:
        raise ConfigError(f"--train-split unlabeled: --model {cfg.model} trains on labels; use train or auto")


def _check_local_head(cfg: RunConfig, batch_size: int, world_size: int) -> None:
    """DGL's auxiliary net reads image maps, and its BatchNorm layers need two examples per forward pass."""
    if cfg.local_head != "dgl":
        return
    if cfg.modality != "vision":
        raise ConfigError("--local-head dgl reads image feature maps: use it with --modality vision")
    if cfg.find_max_batch:
        raise ConfigError("--local-head dgl and --find-max-batch: the search starts at batch size 1, which DGL's "
                          "BatchNorm cannot train; give --batch-size instead")
    rows = batch_size // world_size // cfg.accumulate
    if rows < 2:
        raise ConfigError(f"--local-head dgl: its BatchNorm needs at least 2 examples per forward pass; --batch-size "
                          f"{batch_size} gives {rows} per process and micro-batch")


def _check_processes(cfg: RunConfig, spec: MethodSpec, world_size: int, depth: int, batch_size: int) -> None:
    """The options of a run on ``world_size`` processes, and of strategies that spread modules over them."""
    if world_size == 1 and cfg.nproc > 1:
        raise ConfigError(f"--nproc {cfg.nproc}: start the run with `gimbench run --nproc {cfg.nproc}` or torchrun "
                          "(the Python API runs one process)")
    if world_size > 1 and cfg.nproc not in (1, world_size):
        raise ConfigError(f"--nproc {cfg.nproc}: torchrun started {world_size} processes")
    if world_size > 1 and cfg.find_max_batch:
        raise ConfigError("--find-max-batch searches with one process: run it with --nproc 1, then train with "
                          "--nproc N and --batch-size set to N times the size it found")
    if spec.spreads:
        what = f"{flag(STRATEGIES[cfg.model].choice)} {getattr(cfg, STRATEGIES[cfg.model].choice)}"
        if world_size < 2:
            raise ConfigError(f"{what} spreads the modules over processes: run it with --nproc N (N >= 2) or torchrun")
        if world_size > depth:
            bound = "--modules" if cfg.modules else "--depth"
            raise ConfigError(f"{what}: {world_size} processes cannot split {depth} modules (use --nproc <= {bound})")
        for option in ("checkpoint_every", "find_max_batch"):
            if getattr(cfg, option):
                raise ConfigError(f"{flag(option)} is not supported with {what}")
    elif world_size > 1 and batch_size % world_size:
        raise ConfigError(f"--batch-size {batch_size} is the global batch of the {world_size} processes "
                          f"(--nproc); it must be divisible by {world_size}")


def _modules(cfg: RunConfig, depth: int) -> int | None:
    """``--modules`` resolved: the number of modules the ``depth`` layers are cut into where the method cuts
    them (one per layer unless given), ``None`` where it does not."""
    if not applies("modules", cfg):
        return None
    modules = depth if cfg.modules is None else cfg.modules
    if not 1 <= modules <= depth:
        raise ConfigError(f"--modules {modules}: --depth {depth} builds {depth} layers to cut into 1 to {depth} "
                          "modules")
    return modules


def preset_lr(sizes: AudioSpec | VisionSpec, optimizer: str) -> float:
    """The preset's learning rate for ``--optimizer``: the reference's Adam rate for adam and adamw, SGD's own."""
    return sizes.sgd_lr if optimizer == "sgd" else sizes.lr


def _check_precision(cfg: RunConfig, spec: MethodSpec) -> None:
    """fp16 needs CUDA's gradient scaler; the variants spread over processes send float32 activations."""
    if cfg.precision == "fp16" and cfg.device != "cuda":
        raise ConfigError(f"--precision fp16 needs CUDA (its gradient scaler); on --device {cfg.device} use "
                          "--precision bf16 or fp32")
    if cfg.precision != "fp32" and spec.spreads:
        method = STRATEGIES[cfg.model]
        raise ConfigError(f"--precision {cfg.precision}: {flag(method.choice)} {getattr(cfg, method.choice)} "
                          "passes float32 activations between processes; use --precision fp32")


def module_count(cfg: RunConfig) -> int:
    """The number of modules of a resolved config: ``--modules``, or one per layer of ``--depth``."""
    return cfg.modules or cfg.depth


def resolve(cfg: RunConfig, world_size: int = 1, *, recorded: bool = False) -> RunConfig:
    """A copy of ``cfg`` with every ``auto``/``None`` filled in and ``nproc`` set to ``world_size``, or ``ConfigError``.

    Args:
        cfg: what the user asked for.
        world_size: how many processes will train it: torchrun's world size, or ``--nproc`` where the launcher
            checks a run before starting them; 1 for a run in this process.
        recorded: ``cfg`` is one a run recorded (resume, probe), already resolved once: its batch size may be
            the one ``--find-max-batch`` found.
    """
    _check_types(cfg)
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ConfigError(f"--nproc: {world_size!r} is not a number of processes")
    _check_choices(cfg)
    cfg = dataclasses.replace(cfg, modality=modality_of(cfg))
    method = STRATEGIES[cfg.model]
    spec = spec_of(cfg)  # the checked choices name one
    if cfg.modality not in spec.modalities:
        raise ConfigError(f"--model {cfg.model} is for --modality {' or '.join(spec.modalities)}")
    _refuse_options_not_applying(cfg)
    _check_data(cfg, spec)
    _check_numbers(cfg)
    if cfg.find_max_batch != (cfg.memory_budget is not None):
        raise ConfigError("--find-max-batch and --memory-budget go together: the search needs a budget, "
                          "and the budget is only used by the search")
    if cfg.find_max_batch and cfg.batch_size is not None and not recorded:
        raise ConfigError("--batch-size and --find-max-batch exclude each other: the search picks the batch size")
    device = resolve_device(cfg.device)
    if cfg.memory_budget is not None:
        _check_budget(cfg.memory_budget, device)
    preset = cfg.preset if cfg.preset != "auto" else ("paper" if device == "cuda" else "tiny")
    network = _network(cfg, spec)
    entry = network_entry(network)
    depth = cfg.depth if cfg.depth is not None else entry.reference_at(preset)
    if spec.depth is not None:
        if cfg.depth not in (None, spec.depth):
            raise ConfigError(f"--depth: --model {cfg.model} has {spec.depth} module(s); use --depth "
                              f"{spec.depth} or omit it")
        depth = spec.depth
    _check_depth(entry, depth, preset)
    modules = _modules(cfg, depth)
    steps = cfg.steps if cfg.steps is not None else DEFAULT_STEPS[cfg.modality]
    if steps < spec.cycle(modules or depth):
        what = f"--modules ({modules})" if modules not in (None, depth) else f"--depth ({depth})"
        raise ConfigError(f"{flag(method.choice or 'model')} {getattr(cfg, method.choice or 'model')} needs "
                          f"--steps >= {what}, got {steps}")
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else min(DEFAULT_WARMUP, steps // 2)
    context = cfg.context
    if context == "auto":  # the paper's context network sits on the paper's encoder only (docs/models.md)
        context = spec.vision_context if network == PAPER_NETWORKS["vision"] else "none"
    if context == "pixelcnn" and cfg.modality != "vision":
        raise ConfigError("--context pixelcnn applies to --modality vision only (audio's context is the GRU)")
    sizes = PRESETS[preset][cfg.modality]
    batch_size = cfg.batch_size or sizes.batch_size
    _check_processes(cfg, spec, world_size, modules or depth, batch_size)
    _check_local_head(cfg, batch_size, world_size)
    micro_batches = cfg.micro_batches
    if micro_batches is None and applies("micro_batches", cfg):
        micro_batches = DEFAULT_MICRO_BATCHES
    resolved = dataclasses.replace(cfg, network=network, device=device, preset=preset, depth=depth, context=context,
                                   steps=steps, warmup_steps=warmup, batch_size=batch_size,
                                   lr=cfg.lr or preset_lr(sizes, cfg.optimizer),
                                   micro_batches=micro_batches, modules=modules, nproc=world_size)
    _check_batch_memory(resolved, sizes, preset, entry.input_of(preset), device, world_size,
                        network == PAPER_NETWORKS[cfg.modality])
    _check_precision(resolved, spec)
    spec.check(resolved, world_size)
    return resolved
