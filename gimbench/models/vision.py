"""The vision encoder of REFERENCE.md: pre-activation ResNet-50 bottleneck stages without BatchNorm,
applied to every 16x16 patch (stride 8) of a 64x64 crop on its own.

Depth rule: depth N has N modules. Modules 1-3 are the reference's stages (3, 4, 6 blocks at widths
64, 128, 256; depth 1 and 2 keep the first one or two). Each module past the third adds
``extra_blocks`` constant-resolution blocks at the last width, so the encoder grows without
changing its output grid. Every module maps per-patch maps (B*P, C_in, h, w) to (B*P, C_out, h', w');
module 0 also cuts the image into patches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gimbench.models.networks import MAX_DEPTH, Layers, register_network
from gimbench.models.presets import PRESETS, VisionSpec


class Bottleneck(nn.Module):
    """Pre-activation bottleneck: ReLU before each biased conv; 1x1, 3x3 (strided), 1x1 to 4x planes."""

    def __init__(self, in_channels: int, planes: int, stride: int) -> None:
        super().__init__()
        out = 4 * planes
        self.conv1 = nn.Conv2d(in_channels, planes, 1)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1)
        self.conv3 = nn.Conv2d(planes, out, 1)
        projects = stride != 1 or in_channels != out
        self.shortcut = nn.Conv2d(in_channels, out, 1, stride) if projects else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(x)
        # The projection reads the ReLU'd input; the identity path keeps the raw input.
        skip = self.shortcut(a) if self.shortcut is not None else x
        h = self.conv2(F.relu(self.conv1(a)))
        return self.conv3(F.relu(h)) + skip


class Patchify(nn.Module):
    """(B, 1, H, W) images to (B * P, 1, patch, patch) overlapping patches, row-major over the grid."""

    def __init__(self, patch: int, stride: int) -> None:
        super().__init__()
        self.patch, self.stride = patch, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        p = x.unfold(2, self.patch, self.stride).unfold(3, self.patch, self.stride)
        return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, self.patch, self.patch)


def stage(in_channels: int, planes: int, blocks: int, stride: int) -> list[nn.Module]:
    """``blocks`` bottlenecks; only the first one strides or changes the channel count."""
    layers = [Bottleneck(in_channels, planes, stride)]
    layers += [Bottleneck(4 * planes, planes, 1) for _ in range(blocks - 1)]
    return layers


def vision_modules(spec: VisionSpec, depth: int) -> list[nn.Module]:
    """The ``depth`` modules of the vision encoder, in order."""
    modules: list[nn.Module] = []
    channels = spec.stem
    for i in range(depth):
        if i < len(spec.widths):
            planes, blocks, stride = spec.widths[i], spec.blocks[i], 1 if i == 0 else 2
        else:
            planes, blocks, stride = spec.widths[-1], spec.extra_blocks, 1
        layers = stage(channels, planes, blocks, stride)
        if i == 0:
            layers = [Patchify(spec.patch, spec.patch_stride), nn.Conv2d(1, spec.stem, 5, 1, 2), *layers]
        modules.append(nn.Sequential(*layers))
        channels = 4 * planes
    return modules


def vision_input(preset: str) -> tuple[int, ...]:
    """One grayscale crop of the preset: (1, crop, crop)."""
    crop = PRESETS[preset]["vision"].crop
    return (1, crop, crop)


@register_network("gim-vision", modality="vision", reference_depth=3, max_depth=MAX_DEPTH, input_shape=vision_input)
def gim_vision(preset: str, depth: int) -> Layers:
    """The paper's vision encoder: ResNet-50 stages on every patch of the crop."""
    spec = PRESETS[preset]["vision"]
    names = [f"stage{i + 1}" if i < len(spec.widths) else f"extra{i + 1}" for i in range(depth)]
    return Layers(vision_modules(spec, depth), names, vision_input(preset))
