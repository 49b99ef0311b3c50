"""He et al.'s CIFAR ResNet-110 (the network of InfoPro's memory table): a 3x3 conv stem of 16 channels with
BatchNorm and ReLU, then three stages of 18 basic blocks at 16, 32 and 64 channels on 32x32 RGB images, the first
block of stages 2 and 3 striding by 2 with a 1x1 conv + BatchNorm shortcut (as InfoPro's code has it). The blocks
are torchvision's ``BasicBlock``.

Each block is a layer (the stem is one more: 55 in all), so ``--modules K`` cuts at block granularity and
``--split balanced`` can place the cuts where the measured cost balances, as InfoPro does. ``paper`` is ResNet-110
(18 blocks a stage); ``tiny`` is ResNet-14 (2 blocks a stage), same widths and input.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from torch import nn

from gimbench.models.networks import Layers, register_network

if TYPE_CHECKING:  # torchvision is imported where a network is built
    from torchvision.models.resnet import BasicBlock

BLOCKS = {"paper": 18, "tiny": 2}  # basic blocks per stage: 6n + 2 weighted layers, ResNet-110 and ResNet-14
WIDTHS = (16, 32, 64)
SIDE = 32


def cifar_input(preset: str) -> tuple[int, ...]:
    """A CIFAR image: 32x32 RGB, at every preset."""
    return (3, SIDE, SIDE)


def block(in_channels: int, out_channels: int, stride: int) -> BasicBlock:
    """A basic block; where it strides or widens, its shortcut is a 1x1 conv + BatchNorm."""
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                 nn.BatchNorm2d(out_channels))
    from torchvision.models.resnet import BasicBlock  # torchvision loads in about a second: only when built

    return BasicBlock(in_channels, out_channels, stride, shortcut)


def cifar_layers(blocks: int) -> tuple[list[nn.Module], list[str]]:
    """The stem and every block, in order, with torchvision-style names (``layer2.0`` is stage 2's first block)."""
    layers: list[nn.Module] = [nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False), bn1=nn.BatchNorm2d(WIDTHS[0]), relu=nn.ReLU(inplace=True)))]
    names, channels = ["stem"], WIDTHS[0]
    for stage, width in enumerate(WIDTHS):
        for i in range(blocks):
            layers.append(block(channels, width, 2 if stage > 0 and i == 0 else 1))
            names.append(f"layer{stage + 1}.{i}")
            channels = width
    return layers, names


def cifar_layer_count(preset: str) -> int:
    """The stem and every block."""
    return 1 + len(WIDTHS) * BLOCKS[preset]


@register_network("resnet110-cifar", modality="vision", reference_depth=cifar_layer_count("paper"),
                  input_shape=cifar_input, layer_count=cifar_layer_count)
def resnet110_cifar(preset: str, depth: int) -> Layers:
    """He et al.'s CIFAR ResNet-110 (3 stages x 18 basic blocks, 16/32/64 channels, 32x32; tiny: 2 blocks a
    stage), one layer per block."""
    layers, names = cifar_layers(BLOCKS[preset])
    return Layers(layers[:depth], names[:depth], cifar_input(preset))
