"""What one module keeps resident, split between its encoder part and its loss head.

A module's resident state is its parameters, the gradients a step builds for them (as large as the parameters;
freed after each optimizer step) and the optimizer's state (Adam's and AdamW's two moments per parameter, SGD's
one momentum buffer; created at the module's first step). Split by owner it shows where greedy training's remaining
cost sits: at the paper preset each audio conv module's 512 -> 6144 predictor holds 3.1M parameters against the
conv's 0.5-2.1M.
"""

from __future__ import annotations

import torch

PARTS = ("encoder", "head")
KINDS = ("parameter", "gradient", "optimizer")


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def resident_breakdown(network, optimizer: torch.optim.Optimizer | None, k: int) -> dict[str, int]:
    """``{part}_{kind}_bytes`` of module k for part in encoder/head and kind in parameter/gradient/optimizer."""
    head = network.head(k)
    params = {"encoder": list(network.encoder[k].parameters()), "head": list(head.parameters()) if head else []}
    state = optimizer.state if optimizer is not None else {}
    figures = {}
    for part, tensors in params.items():
        figures[f"{part}_parameter_bytes"] = _bytes(tensors)
        figures[f"{part}_gradient_bytes"] = _bytes(p for p in tensors if p.requires_grad)
        figures[f"{part}_optimizer_bytes"] = sum(_bytes(state[p].values()) for p in tensors if p in state)
    return figures
