"""Shared helpers: tiny networks and inputs built without the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from fuzz_files import make_world
from short_probes import short_probes as capped_probes

from gimbench.config import RunConfig
from gimbench.profiling.meter import NULL_METER
from gimbench.runs.build import build
from gimbench.runs.run import resolve_config

INPUT_SHAPES = {"audio": (1, 5120), "vision": (1, 64, 64)}

# pytest-xdist (`make test` runs the suite on every core) gives its workers COLUMNS=80; a test sees the terminal
# a plain `pytest` gives it (none: gimbench's piped output is 160 columns wide).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)


def tiny(model: str = "gim", modality: str = "audio", **options):
    """(resolved config, network, strategy) at the tiny preset on CPU."""
    cfg = resolve_config(RunConfig(model=model, modality=modality, preset="tiny", device="cpu", **options))
    parts = build(cfg)
    return cfg, parts.network, parts.strategy


def batch(modality: str, size: int = 4, seed: int = 0) -> torch.Tensor:
    """A fixed random input batch with audio-like scale."""
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn((size, *INPUT_SHAPES[modality]), generator=g)


class Capture:
    """Stands in for a module's optimizer: keeps the gradients it would have applied, then clears them."""

    def __init__(self, params) -> None:
        self.params = list(params)
        self.grads: list[torch.Tensor | None] | None = None

    def step(self) -> None:
        self.grads = [None if p.grad is None else p.grad.clone() for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None


def reseed_heads(network, seed: int) -> None:
    """Restart every InfoNCE head's own generator (they draw negatives from it, not from torch's)."""
    from gimbench.losses import SampledNegatives

    heads = [m for m in network.modules() if isinstance(m, SampledNegatives)]
    for i, head in enumerate(heads):
        head.generator.manual_seed(seed + i)


def captured_gradients(network, strategy, x, seed: int = 0) -> list[list[torch.Tensor | None] | None]:
    """Run one strategy step with capturing optimizers; per module, the gradients it produced."""

    captures = [Capture(network.owned_parameters(k)) for k in range(len(network))]
    torch.manual_seed(seed)
    reseed_heads(network, seed)
    strategy.step(network, captures, x, NULL_METER, 0)
    return [c.grads for c in captures]


@pytest.fixture(autouse=True)
def _threads():
    """One torch thread: these are tiny runs, and on a 2-core machine where another process is busy two
    spinning threads made them 10-15x slower; one also fixes the summation order, so results repeat."""
    torch.set_num_threads(1)


def trained_parameters(model: str, modality: str, steps: int = 3, **options) -> list[torch.Tensor]:
    """The parameters after ``steps`` strategy steps of a tiny network on fixed batches (no trainer, no data)."""
    _, network, strategy = tiny(model, modality, steps=steps, context="none", **options)
    optimizers = strategy.make_optimizers(network)
    torch.manual_seed(1)
    for step in range(steps):
        strategy.step(network, optimizers, batch(modality, seed=step), NULL_METER, step)
    return [p.detach().clone() for p in network.parameters()]


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """A real completed 2-step run (gim per-module: one Adam per module, probed) with checkpoints at steps 1 and
    2, in a sweep folder listing it, and a real benchmark JSON (tests/fuzz_files.py). Made once for the session:
    every test that damages a file damages its own copy (``fresh_copy``)."""
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture
def short_probes():
    """Probes capped at a few epochs (tests/short_probes.py): for a test of what a probed run reads and writes."""
    with capped_probes():
        yield
