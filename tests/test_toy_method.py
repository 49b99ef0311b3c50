"""A method defined in this file, registered as docs/extending.md says, trained through ``gimbench.run``.

The toy is end-to-end training with one loss on the top module and a detach halfway up the encoder: the modules
above the cut learn from the top loss, the ones below it get no gradient at all. Nothing under ``gimbench/`` knows
about it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gimbench
from gimbench.config import RunConfig, resolve
from gimbench.profiling.meter import Meter
from gimbench.runs import checkpoint
from gimbench.runs.build import build
from gimbench.strategies import STRATEGIES, Method, MethodSpec, Strategy
from gimbench.strategies.base import optimizer_step


class DetachHalfway(Strategy):
    """One loss on the top module; the input of module ``depth // 2`` is detached, so no gradient reaches below."""

    def step(self, network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
             labels: torch.Tensor | None = None) -> list[torch.Tensor | None]:
        top, cut = len(network) - 1, len(network) // 2
        h = x
        for k, module in enumerate(network.encoder):
            if k == cut:
                h = h.detach()  # the cut: the graph below it is not part of the top loss's
            h_in = h
            with meter.phase(k, "forward"):
                h = module(h)
        with meter.phase(top, "loss"):
            loss = network.head(top)(h_in, h, labels)
        with meter.backward(network):
            loss.backward()
        for k, optimizer in enumerate(optimizers):  # every module's optimizer steps: only gradients decide who moves
            with meter.phase(k, "optimizer"):
                optimizer_step(optimizer)
        return [None] * top + [loss.detach()]


HALFWAY = MethodSpec("toy: end-to-end with a detach halfway up the encoder", DetachHalfway, heads="top")


@pytest.fixture
def halfway():
    """The toy registered under ``--model halfway`` for one test (registries are process-wide)."""
    STRATEGIES.register("halfway")(Method.single(HALFWAY))
    yield "halfway"
    del STRATEGIES["halfway"]


def test_a_method_from_a_test_file_trains_and_its_detach_stops_the_gradient(halfway, tmp_path):
    cfg = RunConfig(model=halfway, modality="audio", depth=4, preset="tiny", device="cpu", steps=2, warmup_steps=0,
                    profile_steps=0, memory_steps=0, batch_size=2, probe=False, quiet=True, out=str(tmp_path))
    result = gimbench.run(cfg)
    assert result.status == "complete" and result.config["model"] == "halfway"
    assert [m.loss["last"] is not None for m in result.modules] == [False, False, False, True]  # one loss, at the top
    start = build(resolve(cfg)).network.state_dict()  # the parameters the run began from (same seed)
    trained = checkpoint.load(Path(result.folder), checkpoint.LATEST)["model"]
    moved = [any(not torch.equal(start[name], trained[name]) for name in start if name.startswith(f"encoder.{k}."))
             for k in range(4)]
    assert moved == [False, False, True, True]  # below the cut nothing learns; above it every module does
