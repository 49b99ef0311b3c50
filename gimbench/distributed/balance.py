"""Module-parallel ranks balanced by cost: contiguous modules per rank, cut where measured step times say.

Cut by count, depth 6 on 2 ranks gives rank 0 conv1-conv3, the three longest sequences, and leaves rank 1
waiting for most of every step. ``--split-ranks balanced`` (the default) measures each module's training step
once before training, on rank 0 (the whole network is still there: every rank builds it from the seed), and
cuts so that the busiest rank's share is the smallest contiguous cuts allow. Rank 0 broadcasts the cut, so
every rank holds the same split whatever its own clock would have said. Which rank trains which module
changes only time, never the parameters: each module trains on exactly what it would in one process.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist

from gimbench.device import clock
from gimbench.models.cuts import balanced_groups
from gimbench.profiling.meter import NULL_METER
from gimbench.strategies.base import train_module
from gimbench.trainer import Parts


def module_costs(parts) -> list[float]:
    """Seconds of each module's training step (forward, local loss, backward, optimizer step, with the run's
    local gradients) on one batch, after one unmeasured step, on ``parts`` built whole for this alone."""
    network, strategy, device, cfg = parts.network, parts.strategy, parts.device, parts.strategy.cfg
    x, labels = parts.source.batch(cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    x, labels = x.to(device), labels.to(device)
    optimizers, modes, now = parts.optimizers, strategy.local_grads(network), clock(device)
    for _ in range(2):  # the first step pays for first calls (kernel setup, Adam's state); the second is kept
        h, costs = x, []
        for k in range(len(network)):
            start = now()
            h, _ = train_module(network, k, h, optimizers[k], NULL_METER, labels, modes[k])
            costs.append(now() - start)
    return costs


def agreed_groups(world, whole: Callable[[], Parts], device: torch.device) -> tuple[list[list[int]], list[float]]:
    """The balanced split (and the costs it came from), measured on rank 0 on ``whole()`` (parts that train
    every module) and broadcast to every rank."""
    message: list = [None]
    if world.is_main:
        costs = module_costs(whole())
        message = [(balanced_groups(costs, world.size), costs)]
    dist.broadcast_object_list(message, src=0, device=device)
    return message[0]
