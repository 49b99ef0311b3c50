"""End-to-end CPC: one loss on the top module, one backward through every module.

Two memory savers engineers use anyway are options of the end-to-end methods (``cpc``, ``supervised``), so a
comparison with gradient isolation is against them and not against plain backprop alone:

- ``--checkpoint-activations``: each module's forward runs under ``torch.utils.checkpoint`` (non-reentrant);
  only the modules' inputs are kept, and each module's activations are recomputed in backward (the recompute
  is booked to that module's backward phase).
- ``--accumulate M``: the batch runs as M equal micro-batches, each with its own forward, loss and backward,
  gradients summed (each micro-batch's loss weighted 1/M), one optimizer step. The parameters equal those
  of one step on the mean of the M micro-batches' gradients; a micro-batch's InfoNCE draws its negatives from
  its own B/M samples (vision: positions; audio: codes), not from the whole batch, so each positive's
  negatives come from a pool M times smaller (same count).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from gimbench.errors import ConfigError
from gimbench.models import Network
from gimbench.profiling.meter import Meter
from gimbench.strategies.base import Strategy, optimizer_step
from gimbench.strategies.method import STRATEGIES, Method, MethodSpec


def check_end_to_end(cfg, processes: int) -> None:
    """``--accumulate`` must cut each process's share of the batch into equal micro-batches."""
    if cfg.accumulate > 1 and cfg.find_max_batch:
        raise ConfigError(f"--accumulate {cfg.accumulate} and --find-max-batch exclude each other: the search "
                          "tries batch sizes it need not divide; search without it, then give --batch-size")
    local = cfg.batch_size // processes  # each process's share of the batch (data parallel)
    if local % cfg.accumulate:
        over = f" over {processes} processes: {local} each" if processes > 1 else ""
        raise ConfigError(f"--accumulate {cfg.accumulate} must divide the batch (--batch-size {cfg.batch_size}"
                          f"{over}) into equal micro-batches")


def check_pipelined(cfg, processes: int) -> None:
    """``--micro-batches`` must cut the batch evenly, and 1F1B needs one per process at least."""
    if cfg.micro_batches <= 0:
        raise ConfigError(f"--micro-batches must be positive, got {cfg.micro_batches}")
    if cfg.batch_size % cfg.micro_batches:
        raise ConfigError(f"--micro-batches {cfg.micro_batches} must divide the batch size ({cfg.batch_size})")
    if cfg.pipeline == "1f1b" and cfg.micro_batches < processes:
        raise ConfigError(f"--pipeline 1f1b needs --micro-batches >= the number of processes ({processes}), "
                          f"got {cfg.micro_batches}")


class EndToEnd(Strategy):
    """CPC: the same encoder as GIM with a single InfoNCE loss at the top and full backprop."""

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        parts = self.cfg.accumulate
        micro_labels = labels.chunk(parts) if labels is not None else [None] * parts
        losses = [self.backward_one(network, xm, lm, meter, parts) for xm, lm in zip(x.chunk(parts), micro_labels,
                                                                                          strict=True)]
        for k, optimizer in enumerate(optimizers):
            with meter.phase(k, "optimizer"):
                optimizer_step(optimizer, self.precision)
        self.precision.update()
        loss = losses[0] if parts == 1 else torch.stack(losses).mean()
        return [None] * (len(network) - 1) + [loss]

    def forward(self, module: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
        """One module's forward; under ``--checkpoint-activations`` its activations are recomputed in backward."""
        if self.cfg.checkpoint_activations:
            return checkpoint(module, h, use_reentrant=False)
        return module(h)

    def backward_one(
        self, network: Network, x: torch.Tensor, labels: torch.Tensor | None, meter: Meter, parts: int
    ) -> torch.Tensor:
        """Forward, top loss and backward of one (micro-)batch, its loss weighted 1/``parts``; returns the
        detached loss."""
        top, cast = len(network) - 1, self.precision.cast
        h = x
        for k, module in enumerate(network.encoder):
            h_in = h
            with meter.phase(k, "forward"), cast():
                h = self.forward(module, h)
        with meter.phase(top, "loss"), cast():
            loss = network.head(top)(h_in, h, labels)
        with meter.backward(network):
            self.precision.backward(loss / parts)
        return loss.detach()


SAVERS = ("checkpoint_activations", "accumulate")  # the memory savers of the end-to-end methods
CPC = MethodSpec("end-to-end CPC: one loss at the top, one backward through every module", EndToEnd, heads="top",
                 vision_context="pixelcnn", options=SAVERS, called="--model cpc --pipeline none",
                 check=check_end_to_end)
# Trained by gimbench.distributed.pipelined_cpc, on the engines of these names.
PIPELINED = {schedule: MethodSpec("end-to-end CPC pipelined over torchrun's processes (--pipeline gpipe or 1f1b)",
                                  heads="top", vision_context="pixelcnn", spreads=True, options=("micro_batches",),
                                  called="a pipelined cpc (--model cpc --pipeline gpipe or 1f1b)",
                                  engine=f"pipeline-{schedule}", check=check_pipelined)
             for schedule in ("gpipe", "1f1b")}

STRATEGIES.register("cpc")(Method(CPC.description, {"none": CPC, **PIPELINED}, choice="pipeline"))
STRATEGIES.register("supervised")(Method.single(MethodSpec(
    "supervised end-to-end: a classifier (speaker / class) on the top module", EndToEnd, loss="classifier",
    heads="top", options=SAVERS, check=check_end_to_end)))
