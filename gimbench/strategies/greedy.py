"""Greedy InfoMax: a local InfoNCE loss per module and no gradient across module boundaries.

``--gim-mode`` picks the schedule, which is what decides memory:

- ``per-module``: forward, loss, backward and optimizer step of module k before module k+1 runs;
  module k's graph is freed before the next one is built.
- ``summed``: the reference implementation's schedule; every module's loss is built, summed and
  backpropagated once. Same gradients, but every module's graph is alive at the single backward.
- ``sequential``: module k alone is trained for its share of the steps; the modules below it run
  without autograd and the ones above do not run. The shares are those of the steps the run began
  with; steps added when resuming with a larger ``--steps`` train the top module further.
"""

from __future__ import annotations

import torch

from gimbench.models import Network
from gimbench.profiling.meter import Meter
from gimbench.strategies.base import Strategy, optimizer_step, train_module
from gimbench.strategies.method import STRATEGIES, Method, MethodSpec
from gimbench.strategies.sparse import forward_loss


class PerModule(Strategy):

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        losses: list[torch.Tensor | None] = []
        h, modes = x, self.local_grads(network)
        for k in range(len(network)):
            h, loss = train_module(network, k, h, optimizers[k], meter, labels, modes[k], self.precision)
            losses.append(loss)
        self.precision.update()
        return losses


class Summed(Strategy):

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        losses = []
        h, modes = x, self.local_grads(network)
        for k in range(len(network)):
            z, loss = forward_loss(network, k, h, meter, labels, modes[k], self.precision)
            losses.append(loss)
            h = z.detach()
        with meter.backward(network):
            self.precision.backward(torch.stack(losses).sum())
        for k, optimizer in enumerate(optimizers):
            with meter.phase(k, "optimizer"):
                optimizer_step(optimizer, self.precision)
        self.precision.update()
        return [loss.detach() for loss in losses]


class Sequential(Strategy):
    def __init__(self, cfg, spec: MethodSpec) -> None:
        super().__init__(cfg, spec)
        self.schedule_steps = cfg.steps  # the run's length the shares are cut from
        self.module = 0  # the module trained at the latest step

    def current(self, step: int, depth: int) -> int:
        """The module trained at ``step``: equal shares of the run, in order."""
        return min(step * depth // self.schedule_steps, depth - 1)

    def trained_at(self, step: int, depth: int) -> tuple[int, ...]:
        return (self.current(step, depth),)

    def state(self) -> dict:
        return super().state() | {"module": self.module, "schedule_steps": self.schedule_steps}

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.module, self.schedule_steps = int(state["module"]), int(state["schedule_steps"])
        if self.schedule_steps < 1:
            raise ValueError(f"schedule_steps must be positive, got {self.schedule_steps}")

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        k = self.module = self.current(step, len(network))
        h = x
        with torch.no_grad(), self.precision.cast():
            for i, module in enumerate(network.encoder[:k]):
                with meter.phase(i, "forward"):
                    h = module(h)
        _, loss = train_module(network, k, h, optimizers[k], meter, labels, self.local_grads(network)[k],
                               self.precision)
        self.precision.update()
        return [None] * k + [loss] + [None] * (len(network) - k - 1)


GIM_MODES = {
    "per-module": MethodSpec("GIM, per-module: each module's forward, loss, backward and step before the next;"
                             " its graph freed at once", PerModule, isolated=True),
    "summed": MethodSpec("GIM, summed: the reference schedule; every local loss summed, one backward (all graphs"
                         " alive at it)", Summed, isolated=True),
    "sequential": MethodSpec("GIM, sequential: one module trains at a time for its share of the steps;"
                             " those below run without autograd", Sequential, isolated=True, in_turn=True),
    # Trained by gimbench.distributed.module_parallel, on the engine of that name.
    "module-parallel": MethodSpec("GIM, module-parallel: each process (--nproc) trains its own modules;"
                                  " batches flow rank to rank (--max-inflight)", isolated=True, spreads=True,
                                  options=("max_inflight", "split_ranks"), engine="module-parallel"),
}
STRATEGIES.register("gim")(Method(
    "Greedy InfoMax: a local loss per module, gradients isolated (--gim-mode picks the schedule)",
    GIM_MODES, choice="gim_mode"))
STRATEGIES.register("greedy-supervised")(Method.single(MethodSpec(
    "greedy supervised: a classifier on every module, gradients isolated", PerModule, loss="classifier",
    isolated=True)))
