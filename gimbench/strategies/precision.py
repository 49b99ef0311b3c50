"""``--precision`` and ``--optimizer``: the arithmetic a step runs in and the update it applies.

Mixed precision (``bf16``, ``fp16``) runs each module's forward and loss under ``torch.autocast``: the parameters,
their gradients and the optimizer's state stay float32, the ops autocast lists (convolutions, linear layers, matrix
products, the GRU) compute and save their outputs in 16 bits, so a step's activations shrink, its resident memory
does not (docs/precision.md says which ops stay in float32). Backward runs outside autocast, on the dtypes the
forward saved. ``fp16`` has a narrower range than float32: its gradients are scaled by a ``GradScaler`` (one per
run, shared by every module's optimizer, updated once per step), which CUDA alone implements here.

The optimizers are one per module (module + its head), of the kind ``--optimizer`` names: Adam and AdamW keep two
moment buffers per parameter, SGD with momentum one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
OPTIMIZERS = ("adam", "adamw", "sgd")
MOMENTUM = 0.9  # --optimizer sgd: heavy-ball momentum, one buffer per parameter


def make_optimizer(kind: str, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer | None:
    """The optimizer ``--optimizer kind`` names over ``params`` (``None`` without any): torch's defaults otherwise
    (Adam's betas 0.9/0.999, AdamW's weight decay 0.01)."""
    if not params:
        return None
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM)
    return {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind](params, lr=lr)


class Precision:
    """Where a strategy's arithmetic goes 16-bit: ``cast()`` around forward and loss, ``backward`` and ``step``
    through the gradient scaler where ``fp16`` needs one, ``update`` once a step."""

    def __init__(self, precision: str = "fp32", device: str = "cpu") -> None:
        self.precision, self.device = precision, torch.device(device).type
        self.scaler = torch.amp.GradScaler(self.device) if precision == "fp16" else None

    def cast(self):
        """The context a module's forward and loss run in: autocast to 16 bits, or nothing under fp32."""
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(self.device, dtype=DTYPES[self.precision])

    def backward(self, output: torch.Tensor, gradient: torch.Tensor | None = None) -> None:
        """``output.backward(gradient)`` (a loss: no gradient), the output scaled first under fp16."""
        (self.scaler.scale(output) if self.scaler else output).backward(gradient)

    def step(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Apply and clear the gradients of one module (under fp16 unscaled first; skipped if any is not finite)."""
        if optimizer is None:
            return
        if self.scaler:
            self.scaler.step(optimizer)
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def update(self) -> None:
        """End a step: the scaler adjusts its scale from what this step's gradients held."""
        if self.scaler:
            self.scaler.update()

    @contextmanager
    def aside(self) -> Iterator[None]:
        """Steps taken inside (a measurement's) use a copy of the scaler, leaving the run's as it was."""
        kept = self.scaler
        if kept:
            self.scaler = torch.amp.GradScaler(self.device)
            self.scaler.load_state_dict(kept.state_dict())
        try:
            yield
        finally:
            self.scaler = kept

    def state(self) -> dict:
        """The scaler's state (its scale and growth count) where there is one; checkpoints hold it."""
        return {"scaler": self.scaler.state_dict()} if self.scaler else {}

    def load_state(self, state: dict) -> None:
        """Continue from what ``state()`` returned."""
        if self.scaler and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


FP32 = Precision()  # full precision, no scaler: what a measurement uses when a run hands in none
