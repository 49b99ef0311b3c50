"""Data parallel: every rank trains every module on its own equal slice of the global batch.

Each trainable part a module owns (``encoder[k]``, head k) is wrapped in its own
``DistributedDataParallel``, so module k's gradients are all-reduced as soon as its backward finishes
(under ``gim`` per-module, before module k+1 runs). The strategy receives a ``DataParallelView`` in
place of the network; the trainer, checkpoints, probes and checksums keep the plain network (its
state_dict has no ``module.`` prefixes). The InfoNCE heads draw negatives over the gathered global
batch (``batch_group``), so with the same global batch and seed N processes train the same parameters
as one, up to float rounding.

Data is not sharded: every rank draws the whole global batch with the run's seeded generator and keeps
its slice, which is what makes the runs equal; the cost shows in each rank's ``data_wait_ms``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gimbench.config import ConfigError, RunConfig
from gimbench.distributed.engine import ENGINES, Engine
from gimbench.losses import SampledNegatives


def _parallel(module: nn.Module, device: torch.device, trained: bool) -> nn.Module:
    """``module`` in DDP, or itself when it is not trained (MFCC, random init)."""
    if not trained or not any(p.requires_grad for p in module.parameters()):
        return module
    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None,
                                   broadcast_buffers=False)


class DataParallelView:
    """The network as strategies see it under data parallelism: the same interface as ``Network``
    (``encoder``, ``head(k)``, ``names``, ``len``, ``owned_parameters``), each part of a trained module
    (``trained[k]``: it has an optimizer) in its own DDP."""

    def __init__(self, network, device: torch.device, trained: list[bool]) -> None:
        self.network, self.names = network, network.names
        self.encoder = [_parallel(module, device, trained[k]) for k, module in enumerate(network.encoder)]
        self.heads = {k: _parallel(network.head(k), device, trained[k]) for k in range(len(network)) if network.head(k)}

    def __len__(self) -> int:
        return len(self.network)

    def head(self, k: int) -> nn.Module | None:
        return self.heads.get(k)

    def owned_parameters(self, k: int) -> Iterator[nn.Parameter]:
        return self.network.owned_parameters(k)


class DataParallelStrategy:
    """Runs the wrapped strategy on the ``DataParallelView``; the losses it returns are averaged over
    the ranks (each the mean over an equal slice: the global batch's loss), so every rank records the
    same losses and stops together on a NaN."""

    def __init__(self, strategy, view: DataParallelView) -> None:
        self.inner, self.view = strategy, view

    def __getattr__(self, name: str):
        return getattr(self.__dict__["inner"], name)

    def step(self, network, optimizers, x, meter, step, labels=None) -> list[torch.Tensor | None]:
        losses = self.inner.step(self.view, optimizers, x, meter, step, labels=labels)
        present = [k for k, loss in enumerate(losses) if loss is not None]
        if present:
            values = torch.stack([losses[k].detach().float() for k in present])
            dist.all_reduce(values)
            for i, k in enumerate(present):
                losses[k] = values[i] / dist.get_world_size()
        return losses


class SlicedSource:
    """A source whose ``batch(global_size, generator)`` draws the whole global batch, as one process
    would, and returns this rank's equal slice of it."""

    def __init__(self, source, rank: int, size: int) -> None:
        self.source, self.rank, self.size = source, rank, size

    def __getattr__(self, name: str):
        if "source" not in self.__dict__:  # while unpickling in a loader worker
            raise AttributeError(name)
        return getattr(self.__dict__["source"], name)

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.source.batch(batch_size, generator)
        n = batch_size // self.size
        return x[self.rank * n:(self.rank + 1) * n], y[self.rank * n:(self.rank + 1) * n]


@ENGINES.register("data-parallel")
class DataParallel(Engine):
    mode = "data-parallel"

    def check(self, cfg: RunConfig, size: int) -> None:
        if cfg.batch_size % size:
            raise ConfigError(f"--batch-size {cfg.batch_size} is the global batch of the {size} processes "
                              f"(--nproc); it must be divisible by {size}")

    def prepare(self, trainer, world, device) -> None:
        trainer.source = SlicedSource(trainer.source, world.rank, world.size)
        for module in trainer.network.modules():
            if isinstance(module, SampledNegatives):
                module.batch_group = dist.group.WORLD
        trained = [optimizer is not None for optimizer in trainer.optimizers]
        trainer.strategy = DataParallelStrategy(trainer.strategy, DataParallelView(trainer.network, device, trained))

    def local_batch(self, cfg: RunConfig, world) -> int:
        return cfg.batch_size // world.size
