"""Loss heads: InfoNCE of REFERENCE.md, and a classifier for the supervised baselines.

A head maps a module's input and output (and the batch's labels, which only the classifier reads) to
a scalar loss; it never detaches (strategies decide gradient flow). Audio InfoNCE predicts future
codes along time, vision InfoNCE (the paper's patches, or any map or token grid) predicts grid rows below.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# Every rank's rows of a data-parallel batch, and where this rank's start (gimbench.distributed.data_parallel).
Gather = Callable[[torch.Tensor], tuple[torch.Tensor, int]]


def info_nce(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean of -log p(positive) under a softmax over [positive, negatives].

    Args:
        positive: scores (...,).
        negative: scores (..., N).
    """
    logits = torch.cat([positive.unsqueeze(-1), negative], dim=-1).flatten(0, -2)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


class SampledNegatives(nn.Module):
    """What the InfoNCE heads share: negatives drawn from the head's own generator, over the whole batch.

    - **Own generator.** Each head draws from a CPU generator seeded at construction from torch's global
      one (so from the run's seed). A module's draws then do not depend on which modules ran before it
      in a step: module-parallel GIM, where other processes run the other modules, draws exactly the
      negatives the single-process schedule draws. The generator's state is the head's extra state, so
      it travels in ``state_dict`` and checkpoints.
    - **Whole batch.** Under data parallelism, where ranks split the batch in equal slices, the head is
      called with a ``gather`` function that returns every rank's rows (the gather carries gradients back
      to their owners) and where this rank's start; it draws over the global batch, as one process would,
      keeping its own slice's draws.
    """

    def __init__(self) -> None:
        super().__init__()
        self.generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))

    def draw(self, high: int, size: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Uniform integers in [0, high) of ``size`` from this head's generator, on ``device``. To a GPU they go
        from pinned memory without blocking: a copy from pageable memory would wait for the GPU's queued work
        at every head of every step."""
        drawn = torch.randint(high, size, generator=self.generator)
        if device.type != "cuda":
            return drawn.to(device)
        return drawn.pin_memory().to(device, non_blocking=True)

    @staticmethod
    def whole_batch(rows: torch.Tensor, gather: Gather | None) -> tuple[torch.Tensor, int]:
        """Every rank's ``rows`` concatenated along dim 0, and where this rank's start; ``(rows, 0)`` alone."""
        return (rows, 0) if gather is None else gather(rows)

    def get_extra_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


class AudioInfoNCE(SampledNegatives):
    """Predicts codes 1..K steps ahead from a context with one bias-free linear map per step.

    Negatives are drawn uniformly (with replacement) from all B x L codes of the batch, N for each
    context row the loss reads, and reused by every step k of that row; they are gathered straight
    from the codes, so the loss never holds a shuffled copy of the whole sequence. With ``window``
    set, contexts and positives use one random ``window``-step slice when the sequence is longer.
    """

    def __init__(
        self, *, context_dim: int, code_dim: int, steps: int, negatives: int, window: int | None,
        codes_from_input: bool, codes_from: Callable[[], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.steps, self.negatives, self.window = steps, negatives, window
        self.codes_from_input = codes_from_input  # the GRU module predicts its input codes
        self.codes_from = codes_from  # where those are when the GRU is the top of a group (``Group.take_top_input``)
        self.predictor = nn.Linear(context_dim, code_dim * steps, bias=False)

    def forward(
        self, module_input: torch.Tensor, module_output: torch.Tensor, labels: torch.Tensor | None = None,
        gather: Gather | None = None,
    ) -> torch.Tensor:
        """Loss of codes (B, C, L) given contexts (B, Cc, L); scalar. Labels are not used."""
        if self.codes_from_input and self.codes_from is not None:
            module_input = self.codes_from()
        codes = (module_input if self.codes_from_input else module_output).transpose(1, 2)
        everyone, first = self.whole_batch(codes, gather)
        length = codes.shape[1]
        contexts = module_output.transpose(1, 2) if self.codes_from_input else None
        return self.loss_from(lambda index: everyone[index // length, index % length], sequences=len(everyone),
                              length=length, device=codes.device, first=first, b=len(codes), contexts=contexts)

    def loss_from(
        self, rows: Callable[[torch.Tensor], torch.Tensor], *, sequences: int, length: int, device: torch.device,
        first: int = 0, b: int | None = None, contexts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss, reading codes only through ``rows``: flat positions (sequence * length + step) of the
        whole batch's (sequences, length) codes to their rows (n, C). Sequences ``first`` to ``first + b``
        are this process's; ``contexts`` (b, L, Cc) are given where they are not the codes themselves."""
        b = sequences if b is None else b
        start, width, drawn = self.draw_reads(sequences, length, device)
        drawn = drawn[first : first + b]
        targets, negatives = split_read(rows(read_positions(length, start, width, drawn, first)), width, drawn)
        return self.score(targets if contexts is None else contexts[:, start : start + width], targets, negatives)

    def draw_reads(self, sequences: int, length: int, device: torch.device) -> tuple[int, int, torch.Tensor]:
        """What the loss reads, drawn from the head's generator: the window's start and width, and N negatives
        (flat positions of the whole batch) for every window row of every sequence (sequences, W, N)."""
        width = length if self.window is None else min(self.window, length)
        start = int(self.draw(length - width + 1, (), torch.device("cpu"))) if width < length else 0
        return start, width, self.draw(sequences * length, (sequences, width, self.negatives), device)

    def score(self, contexts: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """The loss of contexts (b, W, Cc) predicting the window's codes (b, W, C) against negatives (b, W, N, C)."""
        b, width, c = targets.shape
        predictions = self.predictor(contexts).view(b, width, self.steps, c)
        # Row t + k of the window for every (t, k); rows past the window are zero padding, masked later.
        ahead = F.pad(targets, (0, 0, 0, self.steps)).unfold(1, self.steps + 1, 1)[:, :width, :, 1:]
        positive = torch.einsum("btkc,btck->btk", predictions, ahead)
        negative = torch.einsum("btkc,btnc->btkn", predictions, negatives)
        return stepwise_info_nce(positive, negative)


def read_positions(length: int, start: int, width: int, drawn: torch.Tensor, first: int = 0) -> torch.Tensor:
    """Flat positions (sequence * length + step) an audio loss reads, in one index: the ``width``-step window
    from ``start`` of sequences ``first`` to ``first + b``, then the drawn rows (b, W, N), b = ``len(drawn)``."""
    offsets = length * (first + torch.arange(len(drawn), device=drawn.device))[:, None]
    window = torch.arange(start, start + width, device=drawn.device) + offsets
    return torch.cat([window.flatten(), drawn.flatten()])


def split_read(picked: torch.Tensor, width: int, drawn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows (n, C) read at ``read_positions`` as the window's codes (b, W, C) and the drawn rows (b, W, N, C)."""
    b, c = len(drawn), picked.shape[-1]
    return picked[: b * width].view(b, width, c), picked[b * width :].view(*drawn.shape, c)


def stepwise_info_nce(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """InfoNCE of K prediction steps from every row t, where step k is defined only for t < W - k.

    Args:
        positive: scores (B, W, K).
        negative: scores (B, W, K, N).

    Returns:
        The mean over each step's valid rows, then over steps (every step weighs the same).
    """
    b, width, steps = positive.shape
    logits = torch.cat([positive.unsqueeze(-1), negative], dim=-1).flatten(0, 2)
    ce = F.cross_entropy(logits, logits.new_zeros(len(logits), dtype=torch.long), reduction="none")
    rows = torch.arange(width, device=ce.device)[:, None]
    valid = rows < width - torch.arange(1, steps + 1, device=ce.device)
    return ((ce.view(b, width, steps) * valid).sum((0, 1)) / (b * valid.sum(0))).mean()


class GridInfoNCE(SampledNegatives):
    """InfoNCE across a grid of codes, as CPC v2 and GIM's vision loss have it, on any layer's output: the code
    at every position predicts the codes k = 1..K rows below it (``skip`` rows further) through one bias-free 1x1
    conv W_k per step; negatives, N per context position and shared by every step, are drawn uniformly with
    replacement from all B x H x W positions of the batch, other positions of the same image and other images.

    Reads a spatial map (B, C, H, W), every position a code (a ResNet stage), or tokens (B, T, D) of a square
    g x g grid, after a class token where T = 1 + g*g (a ViT block; the class token is no position of the grid).
    The score of a context c and a code z is c . (W_k z), computed as (W_k^T c) . z: the same function and
    parameters as applying W_k to the targets, but every step then scores one shared gather of negatives, which
    are read straight from the layer's output (no copy of the whole map is made for them). Scores are scaled by
    ``scale``: 1/sqrt(C) keeps them of order one whatever the width (attention's scaling), so the loss starts near
    ln(1 + N) on a 2048-channel ResNet stage as on a narrow one; the paper's loss (``VisionInfoNCE``) has none.
    """

    def __init__(self, *, channels: int, steps: int, negatives: int, skip: int = 0,
                 context: nn.Module | None = None, scale: float | None = None) -> None:
        super().__init__()
        self.steps, self.negatives, self.skip = steps, negatives, skip
        self.scale = channels**-0.5 if scale is None else scale
        self.context = context
        self.predictors = nn.ModuleList(nn.Conv2d(channels, channels, 1, bias=False) for _ in range(steps))

    def forward(
        self, module_input: torch.Tensor, module_output: torch.Tensor, labels: torch.Tensor | None = None,
        gather: Gather | None = None,
    ) -> torch.Tensor:
        """Loss of a map (B, C, H, W) or tokens (B, T, D); scalar. Labels are not used."""
        codes = grid_codes(module_output)

        def negatives() -> torch.Tensor:
            everyone, first = self.whole_batch(module_output, gather)
            every_code = grid_codes(everyone)
            b, h, w, _ = every_code.shape
            drawn = self.draw(b * h * w, (b, h, w, self.negatives), codes.device)[first : first + len(codes)]
            return every_code[drawn // (h * w), drawn % (h * w) // w, drawn % w]

        return self.score(codes, negatives)

    def score(self, codes: torch.Tensor, negatives: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The loss of a grid of codes (B, H, W, C) against the negatives ``negatives()`` draws (B, H, W, N, C),
        drawn once the predictions exist (the order of the paper loss's graph, which its checksums record)."""
        context = codes if self.context is None else self.context(codes.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        weights = torch.stack([p.weight[:, :, 0, 0] for p in self.predictors])  # (K, C_out, C_in)
        predicted = torch.einsum("bhwc,kcd->bkhwd", context, weights)
        if self.scale != 1:
            predicted = predicted * self.scale
        negative = torch.einsum("bkhwd,bhwnd->bkhwn", predicted, negatives())
        losses = []
        for k in range(1, self.steps + 1):
            offset = k + self.skip
            positive = (predicted[:, k - 1, :-offset] * codes[:, offset:]).sum(-1)
            losses.append(info_nce(positive, negative[:, k - 1, :-offset]))
        return torch.stack(losses).mean()


def grid_codes(output: torch.Tensor) -> torch.Tensor:
    """A layer's output as a grid of codes (B, H, W, C), a view: a map (B, C, H, W) as it is, tokens (B, T, D)
    without the class token (the first, where T - 1 is a square) as a g x g grid."""
    if output.dim() == 4:
        return output.permute(0, 2, 3, 1)
    tokens = output if math.isqrt(output.shape[1]) ** 2 == output.shape[1] else output[:, 1:]
    side = math.isqrt(tokens.shape[1])
    return tokens.unflatten(1, (side, side))


class VisionInfoNCE(GridInfoNCE):
    """The paper's vision loss: predicts grid rows 2..K+1 below each context (the row right below is skipped: its
    patch overlaps the context's), with negatives 16 per context location.

    Module outputs (B*P, C, h, w) are average-pooled per patch into a (B, g, g) grid of codes, each patch encoded on
    its own; the grid loss is ``GridInfoNCE``'s.
    """

    def __init__(self, *, channels: int, grid: int, steps: int, negatives: int, context: nn.Module | None) -> None:
        super().__init__(channels=channels, steps=steps, negatives=negatives, skip=1, context=context, scale=1.0)
        self.grid = grid

    def forward(
        self, module_input: torch.Tensor, module_output: torch.Tensor, labels: torch.Tensor | None = None,
        gather: Gather | None = None,
    ) -> torch.Tensor:
        """Loss of per-patch maps (B*P, C, h, w); scalar. Labels are not used."""
        pooled = module_output.mean(dim=(2, 3))  # (B*P, C)
        g, c = self.grid, pooled.shape[1]
        codes = pooled.view(-1, g, g, c)

        def negatives() -> torch.Tensor:
            everyone, first = self.whole_batch(pooled, gather)
            drawn = self.draw(len(everyone), (len(everyone) // (g * g), g, g, self.negatives), pooled.device)
            return everyone[drawn[first // (g * g) : first // (g * g) + len(codes)]]

        return self.score(codes, negatives)


def pool(module_output: torch.Tensor, patches: int, tokens: bool = False) -> torch.Tensor:
    """One feature vector per example: audio (B, C, L) averaged over time; vision (B*P, C, h, w) averaged over
    space and the P patches of each image (P = 1: a plain map); ``tokens`` (B, T, D) averaged over the tokens;
    features (B, C) as they are."""
    if module_output.dim() == 2:
        return module_output
    if module_output.dim() == 3:
        return module_output.mean(dim=1 if tokens else 2)
    pooled = module_output.mean(dim=(2, 3))
    return pooled.view(-1, patches, pooled.shape[1]).mean(dim=1)


class Classifier(nn.Module):
    """Supervised head: a linear layer on pooled features, cross-entropy against the batch's labels."""

    def __init__(self, *, channels: int, classes: int, patches: int = 1, tokens: bool = False) -> None:
        super().__init__()
        self.patches, self.tokens = patches, tokens
        self.linear = nn.Linear(channels, classes)

    def forward(
        self, module_input: torch.Tensor, module_output: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cross-entropy of the pooled module output; scalar."""
        if labels is None:
            raise ValueError("a supervised head needs the batch's labels")
        return F.cross_entropy(self.linear(pool(module_output, self.patches, self.tokens)), labels)
