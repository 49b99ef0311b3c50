"""A module of ``--modules K``: contiguous layers of the encoder trained as one gradient-isolated module."""

from __future__ import annotations

import torch
from torch import nn


class Group(nn.Sequential):
    """Layers run in order as one module; its loss head sits on the top layer.

    An audio head on the GRU predicts the GRU's *input* codes, which inside a group is no module's input or
    output. With ``keeps_top_input`` the group holds the top layer's input from its latest forward until the
    head takes it (``take_top_input``): the same tensor the GRU saves for its backward anyway, so it costs no
    memory while the step runs.
    """

    def __init__(self, layers: list[nn.Module], *, keeps_top_input: bool = False) -> None:
        super().__init__(*layers)
        self.keeps_top_input = keeps_top_input
        self._top_input: torch.Tensor | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        *below, top = self
        for layer in below:
            h = layer(h)
        if self.keeps_top_input:
            self._top_input = h
        return top(h)

    def take_top_input(self) -> torch.Tensor:
        """The top layer's input of the latest forward (released here)."""
        h, self._top_input = self._top_input, None
        if h is None:
            raise RuntimeError("the group's head read its top layer's input before a forward, or twice")
        return h
