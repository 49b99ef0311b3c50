"""Views of real images with channels, uint8 ``(N, C, H, W)``: the channels and size the network reads, training
windows and flips, centre crops, per-channel normalisation.

The run's network decides what an image becomes (``image_input``): its input shape ``(C, S, S)`` asks for one
channel (grayscale, PIL's integer luma of the RGB pixels, as the paper's vision network reads STL-10) or three
(the RGB pixels), in ``S`` x ``S`` crops. Nothing is resized: a network whose input is larger than the
dataset's images is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from gimbench.data.corpus import cut_views
from gimbench.data.problems import DataError
from gimbench.models import network_entry

GRAY, RGB = 1, 3
LEVELS = 256  # uint8 pixel values


def image_input(cfg, dataset: str, side: int) -> tuple[int, int]:
    """(channels, crop side) the resolved ``cfg``'s network reads from ``dataset``'s ``side`` x ``side`` images,
    or ``DataError``. The network's entry says its input shape without drawing a random number (the run's
    parameters are initialised later from its seed)."""
    shape = network_entry(cfg.network).input_of(cfg.preset)
    if len(shape) != 3 or shape[0] not in (GRAY, RGB) or shape[1] != shape[2] or shape[1] > side:
        raise DataError(f"network {cfg.network!r} reads inputs of shape {shape}; --data {dataset} gives square "
                        f"crops of at most {side}x{side} pixels in {GRAY} (grayscale) or {RGB} (RGB) channels, never "
                        "resized: train a network made for them")
    return shape[0], shape[1]


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) uint8 RGB to (B, H, W) uint8 luma, exactly as PIL's ``convert("L")``."""
    r, g, b = (rgb[:, c].astype(np.uint32) for c in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def with_channels(rgb: np.ndarray, channels: int) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB as ``channels`` channels: (B, 1, H, W) luma or the RGB pixels themselves."""
    if channels == GRAY:
        return torch.from_numpy(to_gray(rgb)).unsqueeze(1)
    return torch.from_numpy(np.ascontiguousarray(rgb))


def channel_views(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor,
                  crop: int) -> torch.Tensor:
    """``crop`` x ``crop`` windows of ``images`` (B, C, H, W) at (top, left), mirrored where ``flip``."""
    return cut_views(images.movedim(1, -1), top, left, flip, crop).movedim(-1, 1)


def centre(images: torch.Tensor, crop: int) -> torch.Tensor:
    """The centre ``crop`` x ``crop`` window of every image (N, C, H, W)."""
    top, left = (images.shape[-2] - crop) // 2, (images.shape[-1] - crop) // 2
    return images[..., top:top + crop, left:left + crop]


def channel_stats(chunks: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-channel mean and standard deviation, on the 0..1 scale, of uint8 images (N, C, H, W) handed in
    chunks: float32 ``(C,)`` each, from pixel-value histograms (no float sum drifts, the same on every machine)."""
    counts = None
    for chunk in chunks:
        hist = torch.stack([torch.bincount(chunk[:, c].flatten(), minlength=LEVELS) for c in range(chunk.shape[1])])
        counts = hist if counts is None else counts + hist
    levels = torch.arange(LEVELS, dtype=torch.float64) / (LEVELS - 1)
    total = counts.sum(dim=1, dtype=torch.float64)
    mean = (counts * levels).sum(dim=1) / total
    var = (counts * levels**2).sum(dim=1) / total - mean**2
    return mean.float(), var.clamp(min=0).sqrt().float()


def normalise_channels(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, h, w) to float32 ``(x / 255 - mean) / std`` per channel (``mean``, ``std``: (C,))."""
    return (images.float() / 255.0 - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)
