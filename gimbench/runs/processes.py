"""The run's place among processes: alone, or one rank of a torchrun world.

A run asks the same questions either way (where is my device, who creates the folder, how are my parts
built, when do I stop, what do I gather); ``OneProcess`` answers them for a run alone, and
``gimbench.distributed.runtime.Runtime`` for a rank, so the run itself never branches on which it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import torch

from gimbench.config import RunConfig
from gimbench.distributed.runtime import Runtime, engine_for
from gimbench.distributed.world import World, device_of


class OneProcess:
    """A run alone in its process."""

    main = True  # it writes the folder, checkpoints and results
    distributed = False  # it measures the greedy floor (each module trained alone)

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def joined(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def create_folder(self, create: Callable[[], Path]) -> Path:
        return create()

    def parts(self, cfg: RunConfig, build: Callable):
        return build(cfg)

    def stop_rule(self, stop, parts) -> Callable[[], bool]:
        return stop.requested

    def failure_of(self, error: BaseException, step: int) -> dict | None:
        return None

    def after_fit(self, trainer, build: Callable) -> tuple:
        return None, None

    def gather(self, row: Callable, failure, step: int) -> tuple[None, dict | None]:
        return None, failure

    def ends_together(self, failure) -> bool:
        return False


def processes_for(cfg: RunConfig, world: World) -> OneProcess | Runtime:
    """The place of a run of a config resolved for ``world``."""
    if not world.distributed:
        return OneProcess(torch.device(cfg.device))
    return Runtime(world, engine_for(cfg), device_of(world, cfg.device))
