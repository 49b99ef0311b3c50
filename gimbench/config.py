"""The run configuration: one dataclass, validated with errors that name the flag.

``RunConfig`` holds what the user asked for (``None`` = choose for me); ``resolve`` turns it into a
fully specified config for a device (preset, depth, batch size, context filled in) or raises
``ConfigError`` with a one-line message naming the flag and the allowed values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from gimbench.models import MAX_DEPTH, MODALITIES, REFERENCE_DEPTH, sequence_lengths
from gimbench.models.presets import PRESETS
from gimbench.sizes import parse_size

GIM_MODES = ("per-module", "summed", "sequential")
DEVICES = ("auto", "cpu", "cuda")
CONTEXTS = ("auto", "none", "pixelcnn")


class ConfigError(ValueError):
    """A user mistake in the configuration; its message is one line, naming the flag."""


@dataclass(frozen=True)
class RunConfig:
    """Every option of ``gimbench run``; field names are the flags with ``-`` as ``_``."""

    model: str = "gim"
    modality: str = "audio"
    depth: int | None = None  # None: the reference depth of the modality
    preset: str = "auto"  # auto: paper on CUDA, tiny on CPU
    gim_mode: str = "per-module"
    context: str = "auto"  # vision only: auto = pixelcnn for cpc, none for greedy methods
    steps: int = 300
    warmup_steps: int = 5  # not measured
    profile_steps: int = 50  # timed steps, interleaved with as many unprofiled ones
    memory_steps: int = 2  # tensor-tracked steps (slow; never timed)
    batch_size: int | None = None  # None: the preset's
    lr: float | None = None  # None: the preset's (paper 2e-4 as in the reference; tiny 1e-3)
    seed: int = 0
    device: str = "auto"
    data: str = "synthetic"
    data_root: str | None = None
    out: str = "reports/runs"
    name: str | None = None  # None: <UTC timestamp>-<model>-<modality>-d<depth>
    overwrite: bool = False
    quiet: bool = False
    probe: bool = True  # linear probes on every module after training (--no-probe skips them)
    find_max_batch: bool = False  # search the largest batch within memory_budget, then train at it
    memory_budget: str | None = None  # e.g. "8GiB"; only with find_max_batch

    def to_dict(self) -> dict:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)


def _choice(flag: str, value: object, allowed: tuple | list) -> None:
    if value not in allowed:
        raise ConfigError(f"{flag}: {value!r} is not one of {', '.join(map(str, allowed))}")


def _positive(flag: str, value: float | int) -> None:
    if value <= 0:
        raise ConfigError(f"{flag} must be positive, got {value}")


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
    _choice("--model", cfg.model, models)
    _choice("--modality", cfg.modality, MODALITIES)
    _choice("--gim-mode", cfg.gim_mode, GIM_MODES)
    _choice("--preset", cfg.preset, ("auto", *PRESETS))
    _choice("--context", cfg.context, CONTEXTS)
    _choice("--data", cfg.data, datasets)
    _positive("--steps", cfg.steps)
    if cfg.lr is not None:
        _positive("--lr", cfg.lr)
    if cfg.batch_size is not None:
        _positive("--batch-size", cfg.batch_size)
    for flag, value in (("--warmup-steps", cfg.warmup_steps), ("--profile-steps", cfg.profile_steps),
                        ("--memory-steps", cfg.memory_steps)):
        if value < 0:
            raise ConfigError(f"{flag} must be zero or more, got {value}")
    if cfg.seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {cfg.seed}")
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
    if cfg.gim_mode == "sequential" and cfg.model == "gim" and cfg.steps < depth:
        raise ConfigError(f"--gim-mode sequential needs --steps >= --depth ({depth}), got {cfg.steps}")
    context = cfg.context
    if context == "auto":
        context = "pixelcnn" if cfg.modality == "vision" and cfg.model == "cpc" else "none"
    if context == "pixelcnn" and cfg.modality != "vision":
        raise ConfigError("--context pixelcnn applies to --modality vision only (audio's context is the GRU)")
    spec = PRESETS[preset][cfg.modality]
    return dataclasses.replace(cfg, device=device, preset=preset, depth=depth, context=context,
                               batch_size=cfg.batch_size or spec.batch_size, lr=cfg.lr or spec.lr)
