"""``--modules K --split``: which contiguous layers make each gradient-isolated module.

``even`` cuts by layer count (``gimbench.models.cuts.even_groups``). ``balanced`` cuts where the largest
module's peak memory is the smallest contiguous cuts allow (InfoPro balances its local modules the same way),
from one measured step per layer: the ``--depth`` layers are built as one module each, with a head each, and
trained once, layer by layer (forward, local loss, backward, optimizer step, dense gradients), under the memory
meter. The cost model, per layer l:

- ``kept[l]``: the activation bytes l's forward keeps for backward (the tracker's count at the peak of l's
  forward phase);
- ``peak[l]``: l's step peak (the tracker's highest live bytes over its phases: everything resident, its input,
  its graph, its head's loss and backward).

A module of layers i..j then peaks at about ``kept[i] + ... + kept[j-1] + peak[j]``: its top layer's step with
the graphs of the layers below it in the module still alive until its backward. The counts are tensor bytes
(deterministic for a configuration), so a resumed run, or a network rebuilt after module-parallel training,
gets the same cut.
"""

from __future__ import annotations

from itertools import accumulate

import torch

from gimbench.models import build_network
from gimbench.models.cuts import even_groups, min_max_groups
from gimbench.profiling.memory import MemoryMeter
from gimbench.strategies.base import Strategy, train_module


def layer_costs(cfg, strategy: Strategy, classes: int, x: torch.Tensor, labels: torch.Tensor | None,
                device: torch.device) -> tuple[list[int], list[int]]:
    """(kept, peak) bytes of each layer of ``cfg.depth`` trained as its own module on batch ``x`` (see above)."""
    network = build_network(modality=cfg.modality, preset=cfg.preset, depth=cfg.depth,
                            heads_on=list(range(cfg.depth)), context=cfg.context,
                            classes=classes if strategy.needs_labels else 0).to(device)
    optimizers = [torch.optim.Adam(network.owned_parameters(k), lr=cfg.lr) for k in range(cfg.depth)]
    meter = MemoryMeter(network, optimizers, device)
    with meter.step():
        h = x
        for k in range(cfg.depth):
            h, _ = train_module(network, k, h, optimizers[k], meter, labels)
    intervals = meter.steps[0].intervals
    kept = [intervals[(k, "forward")].tracked.activation_by_module.get(k, 0) for k in range(cfg.depth)]
    peak = [max(i.tracked.live for (m, _), i in intervals.items() if m == k) for k in range(cfg.depth)]
    return kept, peak


def balanced_layers(kept: list[int], peak: list[int], modules: int) -> list[list[int]]:
    """The layers of each of ``modules`` modules whose largest modelled peak (see above) is the smallest."""
    prefix = [0, *accumulate(kept)]
    return min_max_groups(len(kept), modules, lambda first, end: prefix[end - 1] - prefix[first] + peak[end - 1])


def module_layers(cfg, strategy: Strategy, classes: int, batch, device: torch.device) -> list[list[int]] | None:
    """The layers of each module of a resolved config (``None``: one module per layer); ``batch()`` gives the
    (x, labels) a balanced split measures on."""
    modules = cfg.modules or cfg.depth
    if modules == cfg.depth:
        return None
    if cfg.split == "even":
        return even_groups(cfg.depth, modules)
    x, labels = batch()
    return balanced_layers(*layer_costs(cfg, strategy, classes, x.to(device), _to(labels, device), device), modules)


def _to(labels: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if labels is None else labels.to(device)
