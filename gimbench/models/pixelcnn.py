"""The PixelCNN-style context network of CPC vision: gated layers whose 3x3 receptive field is masked
to the current row and the rows above, so a context at row i never sees the rows it must predict.

The mask is realised by a (2, 3) kernel over the input padded one row on top, which is the same
function as a masked 3x3 conv without storing weights that are always zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedLayer(nn.Module):
    """tanh(a) * sigmoid(b) of a vertically masked conv, a 1x1 projection and a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.masked = nn.Conv2d(channels, 2 * channels, (2, 3))
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.masked(F.pad(x, (1, 1, 1, 0))).chunk(2, dim=1)
        return x + self.out(torch.tanh(a) * torch.sigmoid(b))


class PixelCNN(nn.Sequential):
    """``layers`` gated layers at a constant width; (B, C, H, W) to (B, C, H, W)."""

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__(*(GatedLayer(channels) for _ in range(layers)))
