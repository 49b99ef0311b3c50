"""What a dataset hands the linear probes: one task's inputs and labels (``gimbench.probe`` trains on them).

Here, below both ``gimbench.data`` and ``gimbench.probe``, so that neither imports the other to name it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ProbeTask:
    """One probe task's data: inputs to the encoder and labels, for the train and test splits.

    Attributes:
        name: "speaker", "phone" or "class" (selects the learning rate).
        kind: "pooled" (one label per input) or "frames" (one label per 10 ms frame).
        train_inputs: Unbatched encoder inputs, each ``(1, T)`` audio or ``(1, 64, 64)`` image.
        train_labels: Pooled: a 0-dim int64 per input; frames: ``(T // 160,)`` int64 per input.
        test_inputs: As ``train_inputs``, for the test split.
        test_labels: As ``train_labels``, for the test split.
        num_classes: Number of label values.
    """

    name: str
    kind: str
    train_inputs: list[torch.Tensor]
    train_labels: list[torch.Tensor]
    test_inputs: list[torch.Tensor]
    test_labels: list[torch.Tensor]
    num_classes: int
