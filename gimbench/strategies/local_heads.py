"""The classifier heads of the methods trained on labels (``greedy-supervised``, ``supervised``), by ``--local-head``.

- ``linear`` (the default): a linear layer on the pooled module output (``gimbench.losses.Classifier``).
- ``dgl``: the auxiliary net of Decoupled Greedy Learning (Belilovsky, Eickenberg, Oyallon, ICML 2020), the
  "MLP-SR" head its CIFAR code trains with by default: the map average-pooled to a quarter of its side, three
  1x1 convolutions (no bias) each with BatchNorm and ReLU, average-pooled to 2x2, then three fully connected
  layers of 4C units (BatchNorm, ReLU) and a linear layer to the classes; its memory and time count in its
  module's rows, as every head's do. On the paper's patch-wise vision network the 2x2 features are averaged
  over an image's patches before the fully connected layers (the linear head pools over patches the same way).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gimbench.errors import ConfigError
from gimbench.losses import Classifier

LOCAL_HEADS = ("linear", "dgl")
DGL_CONVS = 3  # 1x1 convolutions after the spatial reduction
DGL_LAYERS = 3  # fully connected layers before the last, linear one
DGL_GRID = 2  # side of the pooled map the fully connected layers read


class DglAuxiliary(nn.Module):
    """DGL's MLP-SR auxiliary classifier on a module's (B * patches, C, h, w) output; cross-entropy on the labels."""

    def __init__(self, *, channels: int, classes: int, side: tuple[int, int], patches: int = 1) -> None:
        super().__init__()
        self.patches = patches
        self.reduced = (math.ceil(side[0] / 4), math.ceil(side[1] / 4))
        self.convs = nn.Sequential(*(nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False),
                                                   nn.BatchNorm2d(channels), nn.ReLU()) for _ in range(DGL_CONVS)))
        width = channels * DGL_GRID * DGL_GRID
        self.mlp = nn.Sequential(*(nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU())
                                   for _ in range(DGL_LAYERS)), nn.Linear(width, classes))

    def forward(self, module_input: torch.Tensor, module_output: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of the auxiliary net's logits; scalar."""
        if labels is None:
            raise ValueError("a supervised head needs the batch's labels")
        h = self.convs(F.adaptive_avg_pool2d(module_output, self.reduced))
        h = F.adaptive_avg_pool2d(h, DGL_GRID).flatten(1)
        return F.cross_entropy(self.mlp(h.view(-1, self.patches, h.shape[1]).mean(dim=1)), labels)


def supervised_head(kind: str, out: torch.Size, classes: int, layer: str, tokens: bool = False) -> nn.Module:
    """The ``kind`` head (``LOCAL_HEADS``) on a layer whose output for one example is ``out`` (rows, C, ...), or
    image ``tokens`` (1, T, D)."""
    if kind == "linear":
        return Classifier(channels=out[2 if tokens else 1], classes=classes, patches=out[0], tokens=tokens)
    if len(out) != 4:
        raise ConfigError(f"--local-head dgl reads image feature maps (channels, h, w); layer {layer!r} outputs "
                          f"{tuple(out)} per example: use --local-head linear")
    return DglAuxiliary(channels=out[1], classes=classes, side=(out[2], out[3]), patches=out[0])
