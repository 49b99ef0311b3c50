"""The end-to-end memory savers (``--checkpoint-activations``, ``--accumulate``): what they equal, what they save,
and that they are profiled per module like every other step."""

from __future__ import annotations

import pytest
import torch
from conftest import Capture, batch, captured_gradients, reseed_heads, tiny

from gimbench.config import ConfigError, RunConfig, resolve
from gimbench.profiling.memory import MemoryMeter
from gimbench.profiling.meter import NULL_METER
from gimbench.profiling.timing import TimingMeter

CPU = torch.device("cpu")


@pytest.mark.parametrize("modality", ["audio", "vision"])
def test_checkpointing_gives_the_same_gradients(modality):
    x = batch(modality, 4)
    plain = captured_gradients(*tiny("cpc", modality, depth=2, context="none")[1:], x)
    saved = captured_gradients(*tiny("cpc", modality, depth=2, context="none", checkpoint_activations=True)[1:], x)
    for k, (a, b) in enumerate(zip(plain, saved, strict=True)):
        for pa, pb in zip(a, b, strict=True):
            torch.testing.assert_close(pa, pb, msg=f"module {k}")


def _peaks(**options):
    _, network, strategy = tiny("cpc", "audio", depth=3, **options)
    optimizers = strategy.make_optimizers(network)
    meter = MemoryMeter(network, optimizers, CPU)
    torch.manual_seed(0)
    with meter.step():
        strategy.step(network, optimizers, batch("audio", 8), meter, 0)
    return meter.steps[0]


def test_checkpointing_lowers_the_measured_step_peak():
    plain, saved = _peaks(), _peaks(checkpoint_activations=True)
    # Activations saved for backward: each module's input is kept through the step and its own activations
    # only while backward recomputes and uses them, so the step never holds every module's at once.
    assert saved.peak.by_category["activation"] < 0.8 * plain.peak.by_category["activation"]
    # Every byte the CPU allocator handed out, recomputed activations included.
    assert saved.allocator_peak < plain.allocator_peak


def test_accumulating_two_equals_the_mean_gradient_of_two_half_batches_each_drawing_its_own_negatives():
    x = batch("audio", 4)
    accumulated = captured_gradients(*tiny("cpc", "audio", depth=2, accumulate=2)[1:], x)
    _, network, strategy = tiny("cpc", "audio", depth=2)
    captures = [Capture(network.owned_parameters(k)) for k in range(len(network))]
    torch.manual_seed(0)
    reseed_heads(network, 0)  # the halves draw in turn from the head's generator, as the micro-batches do
    halves = []
    for half in x.chunk(2):
        strategy.step(network, captures, half, NULL_METER, 0)
        halves.append([c.grads for c in captures])
    for k, grads in enumerate(accumulated):
        for i, g in enumerate(grads):
            torch.testing.assert_close(g, (halves[0][k][i] + halves[1][k][i]) / 2, msg=f"module {k}")


@pytest.mark.parametrize("options", [{"checkpoint_activations": True}, {"accumulate": 2}])
def test_the_savers_are_profiled_per_module(options):
    _, network, strategy = tiny("cpc", "audio", depth=3, **options)
    optimizers = strategy.make_optimizers(network)
    meter = TimingMeter(CPU)
    with meter.step():
        strategy.step(network, optimizers, batch("audio", 4), meter, 0)
    for k in range(3):
        for phase in ("forward", "backward", "optimizer"):
            assert meter.steps[0].get((k, phase), 0) > 0, (k, phase)


@pytest.mark.parametrize(("options", "message"), [
    ({"model": "cpc", "accumulate": 3, "batch_size": 8}, "--accumulate 3 must divide the batch"),
    ({"model": "gim", "accumulate": 2}, "--accumulate 2 applies to --model cpc"),
    ({"model": "gim", "checkpoint_activations": True}, "--checkpoint-activations applies to --model cpc"),
    ({"model": "supervised", "accumulate": 0}, "--accumulate must be positive"),
    ({"model": "cpc", "accumulate": 2, "find_max_batch": True, "memory_budget": "1GiB"},
     "--accumulate 2 and --find-max-batch exclude each other"),
])
def test_bad_combinations_are_refused_naming_the_flag(options, message):
    with pytest.raises(ConfigError, match=message):
        resolve(RunConfig(preset="tiny", device="cpu", **options))
