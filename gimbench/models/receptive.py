"""Receptive fields of a 1-d convolution: which input steps an output position reads, and those steps gathered.

Output step t of a Conv1d with (kernel, stride, padding) reads input steps t * stride - padding + j for
j = 0..kernel-1; steps outside [0, L_in) are the zero padding.
"""

from __future__ import annotations

import torch


def output_length(geometry: tuple[int, int, int], input_length: int) -> int:
    """Length of a Conv1d's output for an input of ``input_length`` steps."""
    kernel, stride, padding = geometry
    return (input_length + 2 * padding - kernel) // stride + 1


def receptive_fields(h: torch.Tensor, geometry: tuple[int, int, int], positions: torch.Tensor) -> torch.Tensor:
    """The input patches (n, kernel, C_in) that output positions read, padding as zeros.

    Args:
        h: the conv's input (B, C_in, L_in).
        geometry: (kernel, stride, padding).
        positions: flat output positions (n,), sequence * L_out + step.
    """
    kernel, stride, padding = geometry
    length = output_length(geometry, h.shape[2])
    steps = (positions % length * stride - padding)[:, None] + torch.arange(kernel, device=h.device)  # (n, kernel)
    inside = (steps >= 0) & (steps < h.shape[2])
    # Indexing dims 0 and 2 puts the indexed dims first: (n, kernel, C_in). No padded copy of h is made.
    patches = h[(positions // length)[:, None], :, steps.clamp(0, h.shape[2] - 1)]
    return patches.masked_fill_(~inside[..., None], 0)
