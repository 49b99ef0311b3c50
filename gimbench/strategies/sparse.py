"""Sparse local gradients: a conv module's weights learn only from the output positions its own loss reads.

Under gradient isolation module k's parameters get gradients from module k's loss alone, and audio InfoNCE
reads few of a conv module's outputs: a 128-step window and 10 drawn negatives per window row (at conv1,
4095 steps, under a third of them). Dense training keeps the whole output for backward and backpropagates a
gradient of its full size. The sparse path runs the module without autograd (its output is the next
module's input anyway), reads the rows the loss asks for from that output, and computes the weight and
bias gradients from those positions alone: each row's gradient, masked where the ReLU was off, times the
row's receptive field in the module's (detached) input, gathered a chunk at a time. The loss, the negatives
drawn (the head draws as it always does) and the gradients equal the dense computation's up to the order
of float sums.

``--local-grad``: ``sparse`` wherever it is exact (a conv module under its own audio InfoNCE head, in one
process's batch); ``auto`` (default) only where it is also cheaper: where the loss's window is shorter than
the module's output, so the loss reads a subset of the positions (at the last conv it reads every one);
``dense`` nowhere. The GRU module, vision stages, classifier heads and end-to-end CPC are always dense.
"""

from __future__ import annotations

import torch

from gimbench.losses import AudioInfoNCE
from gimbench.models import Network
from gimbench.models.audio import ConvModule
from gimbench.models.receptive import receptive_fields
from gimbench.profiling.meter import Meter


def sparse_applies(network: Network, k: int) -> bool:
    """Whether module k's local gradient can be computed sparsely, exactly."""
    head = network.head(k)
    return (isinstance(network.encoder[k], ConvModule) and isinstance(head, AudioInfoNCE)
            and not head.codes_from_input and head.batch_group is None)


def local_grad_modes(network: Network, setting: str, lengths: list[int]) -> list[str]:
    """Per module, "sparse" or "dense" under ``--local-grad setting``; ``lengths`` are the modules' output
    lengths on a training crop (``auto`` goes sparse only where the loss's window is shorter)."""
    def sparse(k: int) -> bool:
        if setting == "dense" or not sparse_applies(network, k):
            return False
        window = network.head(k).window
        return setting == "sparse" or (window is not None and window < lengths[k])

    return ["sparse" if sparse(k) else "dense" for k in range(len(network))]


class ReadRows(torch.autograd.Function):
    """Rows (n, C_out) of a conv + ReLU output ``z`` (B, C_out, L) at flat positions, as a function of the conv's
    weight and bias (the input ``h`` is detached). Forward reads ``z``, which the module's forward without
    autograd computed; backward sums each distinct position's gradient, masks it by the ReLU and multiplies it
    by the position's receptive field in ``h``, a chunk of positions at a time."""

    @staticmethod
    def forward(ctx, weight, bias, z, h, positions, geometry):
        length = z.shape[2]
        unique, inverse = torch.unique(positions, return_inverse=True)
        on = z[unique // length, :, unique % length] > 0  # (U, C_out): where the ReLU passes gradient
        ctx.save_for_backward(h, unique, inverse, on)
        ctx.geometry, ctx.weight_shape = geometry, weight.shape
        return z[positions // length, :, positions % length]

    @staticmethod
    def backward(ctx, grad):
        h, unique, inverse, on = ctx.saved_tensors
        rows = grad.new_zeros(len(unique), grad.shape[1]).index_add_(0, inverse, grad).mul_(on)
        out_channels, in_channels, kernel = ctx.weight_shape
        weight = grad.new_zeros(out_channels, kernel * in_channels)  # (kernel, C_in) order: how patches come
        # Chunks of positions whose patches take no more memory than the rows' gradient already does.
        chunk = max(1, len(unique) * out_channels // (kernel * in_channels))
        for i in range(0, len(unique), chunk):
            patches = receptive_fields(h, ctx.geometry, unique[i : i + chunk]).flatten(1)
            weight.addmm_(rows[i : i + chunk].T, patches)
        weight = weight.view(out_channels, kernel, in_channels).transpose(1, 2)
        return weight, rows.sum(0), None, None, None, None


def sparse_forward_loss(network: Network, k: int, h: torch.Tensor, meter: Meter) -> tuple[torch.Tensor, torch.Tensor]:
    """Module k's output without autograd (the next module's input) and its local loss, whose graph reaches
    module k's parameters through the rows the loss reads only."""
    module, head = network.encoder[k], network.head(k)
    conv = module[0]
    with meter.phase(k, "forward"), torch.no_grad():
        z = module(h)
    with meter.phase(k, "loss"):
        loss = head.loss_from(lambda index: ReadRows.apply(conv.weight, conv.bias, z, h, index, module.geometry),
                              sequences=len(z), length=z.shape[2], device=z.device)
    return z, loss


def forward_loss(
    network: Network, k: int, h: torch.Tensor, meter: Meter, labels: torch.Tensor | None, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Module k's forward and local loss, dense (the output carries the graph) or ``"sparse"`` (it does not)."""
    if mode == "sparse":
        return sparse_forward_loss(network, k, h, meter)
    with meter.phase(k, "forward"):
        z = network.encoder[k](h)
    with meter.phase(k, "loss"):
        loss = network.head(k)(h, z, labels)
    return z, loss
