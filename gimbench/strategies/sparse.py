"""Sparse local gradients: a conv module's weights learn only from the output positions its own loss reads.

Under gradient isolation module k's parameters get gradients from module k's loss alone, and audio InfoNCE
reads few of a conv module's outputs: a 128-step window and 10 drawn negatives per window row (at conv1,
4095 steps, under a third of them). Dense training keeps the whole output for backward and backpropagates a
gradient of its full size. The sparse path runs the module without autograd (its output is the next
module's input anyway), reads the rows the loss asks for from that output, computes the loss and its
gradients for those rows and the head's predictor by hand, two sequences at a time (``infonce_gradients``),
and the conv's weight and bias gradients from those positions alone: each row's gradient, masked where the
ReLU was off, times the row's receptive field in the module's (detached) input, gathered a chunk at a time.
The loss, the negatives drawn (the head draws as it always does) and the gradients equal the dense
computation's up to the order of float sums.

``--local-grad``: ``sparse`` wherever it is exact (a conv module under its own audio InfoNCE head, in one
process's batch); ``auto`` (default) wherever it is exact too, since it is also cheaper everywhere measured
(paper audio at batch 8 to 32 and the tiny preset, conv1 to conv5, time and step peak: issue #26's
``benchmarks/sparse_speed.py``), even at the last conv, whose every position the loss reads; ``dense``
nowhere. The GRU module, vision stages, classifier heads and end-to-end CPC are always dense.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gimbench.losses import AudioInfoNCE, read_positions
from gimbench.models import Network
from gimbench.models.audio import ConvModule
from gimbench.models.receptive import receptive_fields
from gimbench.profiling.meter import Meter
from gimbench.strategies.precision import FP32, Precision


def sparse_applies(network: Network, k: int) -> bool:
    """Whether module k's local gradient can be computed sparsely, exactly (not where a distributed engine wrapped
    the module or its head: data-parallel heads draw over the gathered global batch)."""
    head = network.head(k)
    return (isinstance(network.encoder[k], ConvModule) and isinstance(head, AudioInfoNCE)
            and not head.codes_from_input)


def local_grad_modes(network: Network, setting: str) -> list[str]:
    """Per module, "sparse" or "dense" under ``--local-grad setting``: sparse wherever it applies, unless dense."""
    return ["sparse" if setting != "dense" and sparse_applies(network, k) else "dense" for k in range(len(network))]


SEQUENCES_PER_CHUNK = 2  # the loss's working memory is that of this many sequences, whatever the batch


def conv_gradients(rows_grad: torch.Tensor, h: torch.Tensor, positions: torch.Tensor, geometry: tuple[int, int, int],
                   weight_shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """A Conv1d's weight and bias gradients from the gradients (U, C_out) of its output at flat ``positions``
    alone: each times the position's receptive field in ``h``, summed a chunk of positions at a time, chunks
    whose patches take no more memory than ``rows_grad`` does."""
    out_channels, in_channels, kernel = weight_shape
    weight = rows_grad.new_zeros(out_channels, kernel * in_channels)  # (kernel, C_in) order: how patches come
    chunk = max(1, len(positions) * out_channels // (kernel * in_channels))
    for i in range(0, len(positions), chunk):
        patches = receptive_fields(h, geometry, positions[i : i + chunk]).flatten(1).to(weight.dtype)
        weight.addmm_(rows_grad[i : i + chunk].T, patches)
    return weight.view(out_channels, kernel, in_channels).transpose(1, 2).contiguous(), rows_grad.sum(0)


class LocalLoss(torch.autograd.Function):
    """A module's loss ``value`` as a function of its conv's weight and bias and its head's parameters, whose
    gradients the loss phase found already: the head's (``head_grads``) and the read rows' (``rows_grad``, ReLU
    applied), which backward turns into the conv's by their receptive fields in the detached input ``h``."""

    @staticmethod
    def forward(ctx, value, rows_grad, h, positions, geometry, head_grads, weight, bias, *head_params):
        ctx.save_for_backward(rows_grad, h, positions)
        ctx.geometry, ctx.weight_shape, ctx.head_grads = geometry, weight.shape, head_grads
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        rows_grad, h, positions = ctx.saved_tensors
        weight, bias = conv_gradients(rows_grad, h, positions, ctx.geometry, ctx.weight_shape)
        return (None,) * 6 + (grad * weight, grad * bias, *(grad * g for g in ctx.head_grads))


def step_weights(width: int, steps: int, sequences: int) -> torch.Tensor:
    """(W, K): each (window row t, step k)'s weight in ``stepwise_info_nce``'s mean: 1 / (K B n_k) where
    t + k is inside the window (n_k = W - k such rows), 0 past it."""
    t, k = torch.arange(width)[:, None], torch.arange(1, steps + 1)
    valid = t < width - k
    return valid / (steps * sequences * valid.sum(0))


def infonce_gradients(weight: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor, scale: torch.Tensor,
                      weight_grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``AudioInfoNCE.score`` of window rows ``targets`` (b, W, C), their own contexts, against ``negatives``
    (b, W, N, C), with its gradients by hand: autograd would batch a (1 x C) by (C x 1) product per (row,
    step) and keep every intermediate. Returns the loss's share (``scale`` (W, K): ``step_weights``), the
    targets' and negatives' gradients; the predictor's (``weight`` (K C, C)) is added to ``weight_grad``."""
    b, width, n, c = negatives.shape
    steps = weight.shape[0] // c
    predictions = (targets.view(b * width, c) @ weight.T).view(b, width, steps, c)
    # Row t's step k is row t + k, zero past the window (where the scale is 0): a (b, W, K, C) view.
    ahead = F.pad(targets, (0, 0, 0, steps)).unfold(1, steps + 1, 1)[:, :width, :, 1:].transpose(-1, -2)
    negative = predictions.view(b * width, steps, c) @ negatives.view(b * width, n, c).mT
    logits = torch.cat([torch.linalg.vecdot(predictions, ahead)[..., None], negative.view(b, width, steps, n)], -1)
    log_p = logits - logits.logsumexp(-1, keepdim=True)  # log_softmax, which is slow over a last dim of 1 + N
    value = -(log_p[..., 0] * scale).sum()
    grad = log_p.exp_().mul_(scale[..., None])
    grad[..., 0] -= scale
    positive_grad, negative_grad = grad[..., :1], grad[..., 1:].reshape(b * width, steps, n)
    predictions_grad = (negative_grad @ negatives.view(b * width, n, c)).view(b, width, steps, c)
    predictions_grad.addcmul_(positive_grad, ahead)
    targets_grad = (predictions_grad.view(b * width, steps * c) @ weight).view(b, width, c)
    reached = positive_grad * predictions  # what row t's step k gives row t + k
    for k in range(1, min(steps, width - 1) + 1):
        targets_grad[:, k:] += reached[:, : width - k, k - 1]
    weight_grad.addmm_(predictions_grad.view(b * width, steps * c).T, targets.view(b * width, c))
    negatives_grad = negative_grad.mT @ predictions.view(b * width, steps, c)
    return value, targets_grad, negatives_grad.view(b, width, n, c)


def sparse_loss(network: Network, k: int, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Module k's local loss on its output ``z`` (computed without autograd), its gradients as far as the rows
    it reads and the head's parameters found a few sequences at a time; the returned loss's backward finishes
    the conv's gradients."""
    module, head = network.encoder[k], network.head(k)
    b, _, length = z.shape
    start, width, drawn = head.draw_reads(b, length, z.device)
    positions, index = torch.unique(read_positions(length, start, width, drawn), return_inverse=True)  # sorted
    rows = z[positions // length, :, positions % length].float()  # (U, C): every row the loss reads
    window, picked = index[: b * width].view(b, width), index[b * width :].view(drawn.shape)
    weight = head.predictor.weight.detach()
    value, rows_grad, weight_grad = rows.new_zeros(()), torch.zeros_like(rows), torch.zeros_like(weight)
    scale = step_weights(width, head.steps, b).to(z.device)
    for first in range(0, b, SEQUENCES_PER_CHUNK):
        w, p = window[first : first + SEQUENCES_PER_CHUNK], picked[first : first + SEQUENCES_PER_CHUNK]
        part, targets_grad, negatives_grad = infonce_gradients(weight, rows[w], rows[p], scale, weight_grad)
        value += part
        rows_grad.index_add_(0, w.flatten(), targets_grad.flatten(0, 1))
        rows_grad.index_add_(0, p.flatten(), negatives_grad.flatten(0, 2))
    rows_grad.mul_(rows > 0)  # through the ReLU
    conv = module[0]
    return LocalLoss.apply(value, rows_grad, h, positions, module.geometry, [weight_grad], conv.weight, conv.bias,
                           head.predictor.weight)


def sparse_forward_loss(network: Network, k: int, h: torch.Tensor, meter: Meter, precision: Precision = FP32
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Module k's output without autograd (the next module's input; at ``precision``) and its local loss, whose
    graph reaches module k's parameters through the rows the loss reads only. The loss is computed by hand in
    float32 on those rows, a few sequences at a time, at every precision."""
    with meter.phase(k, "forward"), torch.no_grad(), precision.cast():
        z = network.encoder[k](h)
    with meter.phase(k, "loss"):
        loss = sparse_loss(network, k, h, z)
    return z, loss


def forward_loss(
    network: Network, k: int, h: torch.Tensor, meter: Meter, labels: torch.Tensor | None, mode: str,
    precision: Precision = FP32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Module k's forward and local loss at ``precision``, dense (the output carries the graph) or ``"sparse"``
    (it does not)."""
    if mode == "sparse":
        return sparse_forward_loss(network, k, h, meter, precision)
    with meter.phase(k, "forward"), precision.cast():
        z = network.encoder[k](h)
    with meter.phase(k, "loss"), precision.cast():
        loss = network.head(k)(h, z, labels)
    return z, loss
