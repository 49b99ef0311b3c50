"""torchvision's ``VisionTransformer`` as a network (``vit``): the patch embedding is the first layer, then one
layer per encoder block, named as torchvision names them (``encoder_layer_0`` ...); the encoder's final LayerNorm
closes the last block of the whole network.

Every layer outputs tokens (B, 1 + g*g, D): the class token, then a g x g grid of patch tokens, which is what an
InfoNCE head predicts across (``gimbench.losses.GridInfoNCE``) and what a classifier pools.

Sizes: ``paper`` is 96x96 RGB in 8x8 patches (a 12 x 12 grid), 6 blocks of width 192 with 3 heads and MLP 768
(the width of DeiT-Tiny); ``tiny`` is 32x32 in 8x8 patches (4 x 4), 3 blocks of width 32 with 2 heads and MLP 64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from gimbench.models.networks import Layers, register_network

if TYPE_CHECKING:  # torchvision is imported where a network is built
    from torchvision.models import VisionTransformer

# image side, patch side, blocks, heads, width, MLP width
SIZES = {"paper": (96, 8, 6, 3, 192, 768), "tiny": (32, 8, 3, 2, 32, 64)}


class PatchEmbedding(nn.Module):
    """The input stage of torchvision's ``VisionTransformer``, its own parameters: the patch conv (``conv_proj``),
    the class token and the position embedding; (B, 3, H, W) images to (B, 1 + g*g, D) tokens."""

    def __init__(self, vit: VisionTransformer) -> None:
        super().__init__()
        self.conv_proj, self.class_token = vit.conv_proj, vit.class_token
        self.pos_embedding, self.dropout = vit.encoder.pos_embedding, vit.encoder.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.conv_proj(x).flatten(2).transpose(1, 2)  # as VisionTransformer._process_input
        tokens = torch.cat([self.class_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.dropout(tokens + self.pos_embedding)


def vit_input(preset: str) -> tuple[int, ...]:
    """An RGB image of the preset's side."""
    side = SIZES[preset][0]
    return (3, side, side)


def vit_layer_count(preset: str) -> int:
    """The patch embedding and every block."""
    return 1 + SIZES[preset][2]


@register_network("vit", modality="vision", reference_depth=vit_layer_count("paper"), input_shape=vit_input,
                  layer_count=vit_layer_count)
def vit(preset: str, depth: int) -> Layers:
    """torchvision's VisionTransformer (96x96, patch 8, 6 blocks of width 192; tiny: 32x32, 3 blocks of width 32),
    the patch embedding and one layer per block."""
    side, patch, blocks, heads, width, mlp = SIZES[preset]
    from torchvision.models import VisionTransformer  # torchvision loads in about a second: only when built

    net = VisionTransformer(image_size=side, patch_size=patch, num_layers=blocks, num_heads=heads, hidden_dim=width,
                            mlp_dim=mlp)
    layers: list[nn.Module] = [PatchEmbedding(net), *net.encoder.layers]
    layers[-1] = nn.Sequential(layers[-1], net.encoder.ln)  # the encoder's closing norm, where the whole net is built
    names = ["embedding", *(f"encoder_layer_{i}" for i in range(blocks))]
    return Layers(layers[:depth], names[:depth], vit_input(preset))
