"""``--modules K --split``: the layers of each module of a run, measured first where the cut is balanced.

The cut itself is the method's (``gimbench.strategies.split``); the measurement is profiling's
(``gimbench.profiling.layer_costs``). This puts the two together for a run's build: a network of the
``--depth`` layers with a head on each, trained layer by layer as the greedy methods train a module.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from gimbench.config import RunConfig
from gimbench.models.cuts import even_groups
from gimbench.profiling.layer_costs import layer_costs
from gimbench.strategies import MethodSpec
from gimbench.strategies.base import train_module
from gimbench.strategies.heads import build_network
from gimbench.strategies.precision import Precision, make_optimizer
from gimbench.strategies.split import balanced_layers


def measured_layer_costs(cfg: RunConfig, spec: MethodSpec, classes: int, x: torch.Tensor,
                         labels: torch.Tensor | None, device: torch.device) -> tuple[list[int], list[int]]:
    """(kept, peak) bytes of each layer of ``cfg.depth`` trained as its own module on batch ``x`` (dense local
    gradients; the run's optimizer and precision), on a network built for the measurement alone."""
    network = build_network(network=cfg.network, preset=cfg.preset, depth=cfg.depth,
                            heads_on=list(range(cfg.depth)), context=cfg.context,
                            classes=classes if spec.needs_labels else 0, local_head=cfg.local_head).to(device)
    optimizers = [make_optimizer(cfg.optimizer, list(network.owned_parameters(k)), cfg.lr) for k in range(cfg.depth)]
    precision = Precision(cfg.precision, device.type)

    def train(k: int, h: torch.Tensor, meter) -> torch.Tensor:
        h = train_module(network, k, h, optimizers[k], meter, labels, precision=precision)[0]
        precision.update()
        return h

    return layer_costs(network, optimizers, train, x, device)


def module_layers(cfg: RunConfig, spec: MethodSpec, classes: int, batch: Callable, device: torch.device
                  ) -> list[list[int]] | None:
    """The layers of each module of a resolved config (``None``: one module per layer); ``batch()`` gives the
    (x, labels) a balanced split measures on."""
    modules = cfg.modules or cfg.depth
    if modules == cfg.depth:
        return None
    if cfg.split == "even":
        return even_groups(cfg.depth, modules)
    x, labels = batch()
    labels = None if labels is None else labels.to(device)
    return balanced_layers(*measured_layer_costs(cfg, spec, classes, x.to(device), labels, device), modules)
