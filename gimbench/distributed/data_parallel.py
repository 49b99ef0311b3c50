"""Data parallel: every rank trains every module on its own equal slice of the global batch.

Each trainable part a module owns (``encoder[k]``, head k) is wrapped in its own
``DistributedDataParallel``, so module k's gradients are all-reduced as soon as its backward finishes
(under ``gim`` per-module, before module k+1 runs). The strategy receives a ``DataParallelView`` in
place of the network; the trainer, checkpoints, probes and checksums keep the plain network (its
state_dict has no ``module.`` prefixes). The InfoNCE heads are handed a gather function
(``gather_batch``) and draw negatives over the gathered global batch, so with the same global batch and
seed N processes train the same parameters as one, up to float rounding.

Data is not sharded: every rank draws the whole global batch with the run's seeded generator and keeps
its slice, which is what makes the runs equal; the cost shows in each rank's ``data_wait_ms``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gimbench.config import RunConfig
from gimbench.data.corpus import Batch
from gimbench.distributed.engine import ENGINES, Engine
from gimbench.losses import SampledNegatives


def _parallel(module: nn.Module, device: torch.device, trained: bool) -> nn.Module:
    """``module`` in DDP, or itself when it is not trained (MFCC, random init)."""
    if not trained or not any(p.requires_grad for p in module.parameters()):
        return module
    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None,
                                   broadcast_buffers=False)


def gather_batch(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's ``rows`` concatenated along dim 0 (the gather carries gradients back to their owners), and
    where this rank's rows start."""
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(rows.contiguous())), dist.get_rank() * len(rows)


class Gathering(nn.Module):
    """A loss head called with ``gather_batch``: it draws its negatives over the global batch."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, module_input: torch.Tensor, module_output: torch.Tensor, labels=None) -> torch.Tensor:
        return self.head(module_input, module_output, labels, gather=gather_batch)


def _head(head: nn.Module) -> nn.Module:
    return Gathering(head) if isinstance(head, SampledNegatives) else head


class DataParallelView:
    """The network as strategies see it under data parallelism: the same interface as ``Network``
    (``encoder``, ``head(k)``, ``names``, ``len``, ``owned_parameters``), each part of a trained module
    (``trained[k]``: it has an optimizer) in its own DDP."""

    def __init__(self, network, device: torch.device, trained: list[bool]) -> None:
        self.network, self.names = network, network.names
        self.encoder = [_parallel(module, device, trained[k]) for k, module in enumerate(network.encoder)]
        self.heads = {k: _parallel(_head(network.head(k)), device, trained[k]) for k in range(len(network))
                      if network.head(k)}

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

    def local_grads(self, network) -> list[str]:
        """How each module's local gradient is computed: as the wrapped strategy does on the view (dense, for
        modules and heads wrapped for data parallelism)."""
        return self.inner.local_grads(self.view)

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

    def batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        x, y = self.source.batch(batch_size, generator)
        n = batch_size // self.size
        return Batch(x[self.rank * n:(self.rank + 1) * n], y[self.rank * n:(self.rank + 1) * n])


@ENGINES.register("data-parallel")
class DataParallel(Engine):
    mode = "data-parallel"

    def parts(self, cfg: RunConfig, world, build):
        parts = build(cfg)
        trained = [optimizer is not None for optimizer in parts.optimizers]
        view = DataParallelView(parts.network, parts.device, trained)
        return replace(parts, source=SlicedSource(parts.source, world.rank, world.size),
                       strategy=DataParallelStrategy(parts.strategy, view))

    def local_batch(self, cfg: RunConfig, world) -> int:
        return cfg.batch_size // world.size
