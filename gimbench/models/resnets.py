"""torchvision's ResNets as networks: ``resnet18`` and ``resnet50``, torchvision's own classes (``weights=None``),
cut where torchvision names its stages: the stem (``conv1``, ``bn1``, ``relu``, ``maxpool``), then ``layer1`` to
``layer4``. ``--depth N`` keeps the first N of these five layers; BatchNorm stays (docs/models.md says what it does
under gradient isolation).

Sizes: ``paper`` is torchvision's network on 96x96 RGB (STL-10's size; its layer4 map is 3x3); ``tiny`` is
the same class with one block per stage on 64x64 RGB, the smallest input whose layer4 map (1/32 of the side)
keeps the two rows an InfoNCE head predicts across.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from torch import nn

from gimbench.models.networks import Layers, register_network

if TYPE_CHECKING:  # torchvision is imported where a network is built
    from torchvision.models.resnet import ResNet

SIDES = {"paper": 96, "tiny": 64}
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def resnet_input(preset: str) -> tuple[int, ...]:
    """An RGB image of the preset's side."""
    return (3, SIDES[preset], SIDES[preset])


def stages(net: ResNet, preset: str, depth: int) -> Layers:
    """The first ``depth`` of ``net``'s five stages, named as torchvision names them (the stem: ``stem``)."""
    stem = nn.Sequential(OrderedDict(conv1=net.conv1, bn1=net.bn1, relu=net.relu, maxpool=net.maxpool))
    layers = [stem, net.layer1, net.layer2, net.layer3, net.layer4]
    return Layers(layers[:depth], list(STAGES[:depth]), resnet_input(preset))


@register_network("resnet18", modality="vision", reference_depth=len(STAGES), input_shape=resnet_input)
def resnet18_network(preset: str, depth: int) -> Layers:
    """torchvision's resnet18 (basic blocks 2-2-2-2; tiny 1-1-1-1), cut at the stem and layer1-layer4."""
    from torchvision.models.resnet import BasicBlock, ResNet, resnet18  # torchvision loads in a second: when built

    return stages(resnet18(weights=None) if preset == "paper" else ResNet(BasicBlock, [1, 1, 1, 1]), preset, depth)


@register_network("resnet50", modality="vision", reference_depth=len(STAGES), input_shape=resnet_input)
def resnet50_network(preset: str, depth: int) -> Layers:
    """torchvision's resnet50 (bottlenecks 3-4-6-3; tiny 1-1-1-1), cut at the stem and layer1-layer4."""
    from torchvision.models.resnet import Bottleneck, ResNet, resnet50

    return stages(resnet50(weights=None) if preset == "paper" else ResNet(Bottleneck, [1, 1, 1, 1]), preset, depth)
