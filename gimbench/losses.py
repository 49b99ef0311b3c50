"""InfoNCE losses of REFERENCE.md as small modules holding only their predictors.

A head maps a module's input and output to a scalar loss; it never detaches (strategies decide
gradient flow). Audio heads predict future codes along time, vision heads predict grid rows below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean of -log p(positive) under a softmax over [positive, negatives].

    Args:
        positive: scores (...,).
        negative: scores (..., N).
    """
    logits = torch.cat([positive.unsqueeze(-1), negative], dim=-1).flatten(0, -2)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


class AudioInfoNCE(nn.Module):
    """Predicts codes 1..K steps ahead from a context with one bias-free linear map per step.

    Negatives are drawn once per call, uniformly (with replacement) from all B x L codes of the batch,
    and only for the rows the loss reads; each step k reuses them shifted by k. With ``window`` set,
    contexts and positives use one random ``window``-step slice when the sequence is longer.
    """

    def __init__(
        self, *, context_dim: int, code_dim: int, steps: int, negatives: int, window: int | None,
        codes_from_input: bool,
    ) -> None:
        super().__init__()
        self.steps, self.negatives, self.window = steps, negatives, window
        self.codes_from_input = codes_from_input  # the GRU module predicts its input codes
        self.predictor = nn.Linear(context_dim, code_dim * steps, bias=False)

    def forward(self, module_input: torch.Tensor, module_output: torch.Tensor) -> torch.Tensor:
        """Loss of codes (B, C, L) given contexts (B, Cc, L); scalar."""
        codes = (module_input if self.codes_from_input else module_output).transpose(1, 2)
        context = module_output.transpose(1, 2)
        b, length, c = codes.shape
        width = length if self.window is None else min(self.window, length)
        start = int(torch.randint(length - width + 1, ())) if width < length else 0
        targets = codes[:, start : start + width]
        predictions = self.predictor(context[:, start : start + width]).view(b, width, self.steps, c)
        drawn = torch.randint(b * length, (b, width, self.negatives), device=codes.device)
        negatives = codes.reshape(b * length, c)[drawn]
        losses = []
        for k in range(1, self.steps + 1):
            p = predictions[:, : width - k, k - 1]
            positive = (p * targets[:, k:]).sum(-1)
            negative = torch.einsum("btc,btnc->btn", p, negatives[:, k:])
            losses.append(info_nce(positive, negative))
        return torch.stack(losses).mean()


class VisionInfoNCE(nn.Module):
    """Predicts grid rows 2..K+1 below each context with a 1x1 conv per step applied to the targets.

    Module outputs (B*P, C, h, w) are average-pooled per patch into a (B, C, g, g) grid. 16 negatives
    per location are drawn uniformly with replacement from all B x g x g positions.
    """

    def __init__(self, *, channels: int, grid: int, steps: int, negatives: int, context: nn.Module | None) -> None:
        super().__init__()
        self.grid, self.steps, self.negatives = grid, steps, negatives
        self.context = context
        self.predictors = nn.ModuleList(nn.Conv2d(channels, channels, 1, bias=False) for _ in range(steps))

    def forward(self, module_input: torch.Tensor, module_output: torch.Tensor) -> torch.Tensor:
        """Loss of per-patch maps (B*P, C, h, w); scalar."""
        pooled = module_output.mean(dim=(2, 3))
        c = pooled.shape[1]
        codes = pooled.view(-1, self.grid, self.grid, c).permute(0, 3, 1, 2)
        context = self.context(codes) if self.context is not None else codes
        losses = []
        for k, predictor in enumerate(self.predictors, start=1):
            offset = k + 1  # the skip: the row right below overlaps the context's patch
            targets = predictor(codes)
            ctx = context[:, :, :-offset]
            positive = (ctx * targets[:, :, offset:]).sum(1)
            flat = targets.permute(0, 2, 3, 1).reshape(-1, c)
            drawn = torch.randint(len(flat), (*positive.shape, self.negatives), device=flat.device)
            negative = torch.einsum("bchw,bhwnc->bhwn", ctx, flat[drawn])
            losses.append(info_nce(positive, negative))
        return torch.stack(losses).mean()
