"""This process's place among torchrun's processes, and joining and leaving their process group."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# How long a collective or a point-to-point transfer may wait for a peer before it fails. A peer that dies
# usually closes its sockets and the others fail at once; this bounds the case where it hangs instead.
DEFAULT_TIMEOUT_S = 120


@dataclass(frozen=True)
class World:
    """Rank and size of this process's group; ``World()`` is a single process outside torchrun."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that probes, prints and writes results.json."""
        return self.rank == 0


def world_from_env(environ: dict[str, str] | None = None) -> World:
    """The world torchrun describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; a single process without them."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return World()
    return World(rank=int(env["RANK"]), size=int(env["WORLD_SIZE"]), local_rank=int(env.get("LOCAL_RANK", 0)))


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo on the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def device_of(world: World, device: str) -> torch.device:
    """The device this rank trains on: ``cuda:<local rank>`` for CUDA runs, else the CPU."""
    if device == "cuda":
        return torch.device("cuda", world.local_rank)
    return torch.device(device)


@contextmanager
def joined(world: World, device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Inside, this process is a member of the default process group (a no-op for a single process)."""
    if not world.distributed or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), rank=world.rank, world_size=world.size,
                            timeout=timedelta(seconds=timeout_s))
    try:
        yield
    finally:
        dist.destroy_process_group()


def gather_to_main(world: World, obj: object) -> list[object] | None:
    """Every rank's ``obj`` in rank order on rank 0 (``None`` elsewhere); ``[obj]`` for a single process."""
    if not world.distributed:
        return [obj]
    gathered: list[object] | None = [None] * world.size if world.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered
