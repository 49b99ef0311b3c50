"""The object that trains: a method's gradient flow (its optimizers, its ``step``, its state).

What a method says about itself (options, modalities, heads, engine, error wording) is data beside it
(``gimbench.strategies.method``); a strategy is made from that description for one run.
"""

from __future__ import annotations

import torch

from gimbench.models import Network
from gimbench.profiling.meter import Meter
from gimbench.strategies.method import MethodSpec
from gimbench.strategies.precision import FP32, Precision, make_optimizer
from gimbench.strategies.sparse import forward_loss, local_grad_modes


class Strategy:
    """Decides where losses sit and how gradients flow through a ``Network``.

    Optimizers are one per owning module (module + its head), of the kind ``--optimizer`` names. Adam, AdamW and
    SGD are elementwise, so this is the same update as one optimizer over all parameters; it lets every method
    report optimizer work per module. ``precision`` runs forward and loss at ``--precision``.
    """

    def __init__(self, cfg, spec: MethodSpec) -> None:
        self.cfg = cfg  # a resolved RunConfig
        self.spec = spec  # what the method says about itself
        self.precision = Precision(cfg.precision, cfg.device)

    def make_optimizers(self, network: Network) -> list[torch.optim.Optimizer | None]:
        """One optimizer per module, ``None`` for a module with nothing to train."""
        return [make_optimizer(self.cfg.optimizer, list(network.owned_parameters(k)), self.cfg.lr)
                for k in range(len(network))]

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        """Train on one batch; returns each module's detached loss, ``None`` where none was computed."""
        raise NotImplementedError

    def local_grads(self, network: Network) -> list[str]:
        """Per module, "sparse" or "dense" local gradients (``--local-grad``, see ``strategies/sparse.py``)."""
        setting = self.cfg.local_grad if self.spec.isolated else "dense"
        return local_grad_modes(network, setting)

    def trained_at(self, step: int, depth: int) -> tuple[int, ...]:
        """The modules that ``step`` trains (every one, unless the schedule takes them in turn)."""
        return tuple(range(depth))

    def train_alone(
        self, network: Network, k: int, h: torch.Tensor, optimizer, meter: Meter, labels: torch.Tensor | None = None
    ) -> None:
        """Module k trained by itself on its input ``h``, as the greedy floor (``gimbench.profiling.floor``)
        measures it: forward, its local loss (or, without a head, a dense gradient arriving at its output, as
        end-to-end backprop delivers one), backward and optimizer step; at the run's precision, its gradient
        scaler left as it was."""
        precision = self.precision
        with precision.aside():
            if network.head(k) is not None:
                train_module(network, k, h, optimizer, meter, labels, self.local_grads(network)[k], precision)
                return
            with meter.phase(k, "forward"), precision.cast():
                z = network.encoder[k](h)
            with meter.phase(k, "backward"):
                precision.backward(z, torch.ones_like(z))
            with meter.phase(k, "optimizer"):
                precision.step(optimizer)

    def state(self) -> dict:
        """Strategy state worth recording (e.g. which module is being trained, the fp16 gradient scaler's);
        checkpoints hold it."""
        return self.precision.state()

    def load_state(self, state: dict) -> None:
        """Continue from what ``state()`` returned in an earlier session."""
        self.precision.load_state(state)


def optimizer_step(optimizer: torch.optim.Optimizer | None, precision: Precision = FP32) -> None:
    """Apply and clear the gradients of one module (through ``precision``'s gradient scaler, if it has one)."""
    precision.step(optimizer)


def train_module(
    network: Network, k: int, h: torch.Tensor, optimizer, meter: Meter, labels: torch.Tensor | None = None,
    mode: str = "dense", precision: Precision = FP32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, local loss, backward and optimizer step of module k on input ``h``, with ``mode`` ("dense" or
    "sparse") local gradients, at ``precision``; returns its detached output (the next module's input) and its
    detached loss."""
    z, loss = forward_loss(network, k, h, meter, labels, mode, precision)
    with meter.phase(k, "backward"):
        precision.backward(loss)
    with meter.phase(k, "optimizer"):
        precision.step(optimizer)
    return z.detach(), loss.detach()  # the boundary: module k's graph is freed here
