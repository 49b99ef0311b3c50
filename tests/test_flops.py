"""FLOPs are counted as the hand formulas say, on a warm-up step alone, and reported per module and per step.

Counts are checked against 2 FLOPs per multiply-add on layers of known size; the formulas added for what
FlopCounterMode does not count (the sparse gradient's in-place matmul, cuDNN's fused RNN) against the count of
the same work done by ordinary operators on the CPU. Rates are checked for bookkeeping, never for speed.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Callable

import pytest
import torch
from conftest import batch, tiny
from rich.console import Console
from torch import nn

from gimbench import RunConfig, run
from gimbench.models.receptive import output_length
from gimbench.profiling import saved
from gimbench.profiling.flops import FORMULAS, FlopMeter, rate, reference_rate, reference_size, same_work
from gimbench.profiling.meter import NULL_METER
from gimbench.profiling.profile import Profiler
from gimbench.report import plots
from gimbench.report.collect import collect, result_from_doc
from gimbench.report.groups import groups
from gimbench.report.html_tables import comparison_table
from gimbench.report.terminal import compute_table
from gimbench.strategies.sparse import conv_gradients

CPU = torch.device("cpu")


def counted(layer: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> dict[str, int]:
    """FLOPs of ``layer(x)`` and of the backward of its sum, booked as module 0's phases."""
    meter = FlopMeter()
    with meter.step():
        with meter.phase(0, "forward"):
            y = layer(x)
        with meter.phase(0, "backward"):
            y.sum().backward()
    return {phase: n for (_, phase), n in meter.counts.items()}


def test_a_linear_layer_counts_two_flops_per_multiply_add():
    b, i, o = 8, 24, 10
    x = torch.randn(b, i, requires_grad=True)
    flops = counted(nn.Linear(i, o), x)
    assert flops["forward"] == 2 * b * i * o
    assert flops["backward"] == 2 * (2 * b * i * o)  # the weight's gradient and the input's


def test_a_conv1d_counts_its_output_positions_times_its_kernel():
    b, c_in, c_out, kernel, stride, length = 4, 3, 16, 5, 2, 101
    conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=2)
    flops = counted(conv, torch.randn(b, c_in, length))  # the input needs no gradient: only the weight's
    positions = output_length((kernel, stride, 2), length)
    assert flops["forward"] == 2 * b * positions * c_out * c_in * kernel == flops["backward"]


def test_the_sparse_gradient_counts_the_read_positions_only():
    c_in, c_out, kernel, stride = 6, 12, 4, 2
    h = torch.randn(3, c_in, 50)
    positions = torch.tensor([0, 3, 7, 30, 55, 70])  # flat (sequence, step) of 3 x 24 output steps
    meter = FlopMeter()
    with meter.step(), meter.phase(0, "backward"):
        conv_gradients(torch.randn(len(positions), c_out), h, positions, (kernel, stride, 1),
                       torch.Size((c_out, c_in, kernel)))
    assert meter.counts[(0, "backward")] == 2 * len(positions) * c_out * c_in * kernel


def test_the_cudnn_rnn_formula_counts_what_the_cpu_gru_counts():
    """cuDNN's fused GRU is one kernel FlopCounterMode has no formula for; on the CPU the same GRU runs as matmuls
    it counts. The formula given the same shapes says the same forward, and a backward within a few percent
    (the first step's hidden state needs no gradient)."""
    b, t, i, hidden = 4, 64, 12, 20
    gru = nn.GRU(i, hidden, batch_first=True)
    flops = counted(lambda x: gru(x)[0], torch.randn(b, t, i, requires_grad=True))
    shapes = [w.shape for w in gru._flat_weights]
    forward = FORMULAS[torch.ops.aten._cudnn_rnn]((b, t, i), shapes)
    assert forward == flops["forward"] == 2 * b * t * 3 * hidden * (i + hidden)
    backward = FORMULAS[torch.ops.aten._cudnn_rnn_backward]((b, t, i), shapes, [True, True, False, True])
    assert backward == pytest.approx(flops["backward"], rel=0.05)


def test_gim_and_cpc_count_the_same_encoder_forward_at_depth_one():
    found = {}
    for model in ("gim", "cpc"):
        cfg, network, strategy = tiny(model, depth=1)
        meter = FlopMeter()
        with meter.step():
            strategy.step(network, strategy.make_optimizers(network), batch("audio", 4), meter, 0)
        assert meter.total == sum(meter.counts.values())  # every FLOP of the step sits in some phase
        found[model] = meter.counts
    assert found["gim"][(0, "forward")] == found["cpc"][(0, "forward")] > 0


def test_counting_changes_no_value_computed():
    x = batch("audio", 4)
    runs = []
    for meter in (FlopMeter(), NULL_METER):
        cfg, network, strategy = tiny("gim", depth=2)
        optimizers = strategy.make_optimizers(network)
        with meter.step():
            losses = strategy.step(network, optimizers, x, meter, 0)
        runs.append((losses, [p.detach().clone() for p in network.parameters()]))
    (losses_a, params_a), (losses_b, params_b) = runs
    assert [float(v) for v in losses_a] == [float(v) for v in losses_b]
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))


def test_the_counted_step_is_the_first_warm_up_step_never_a_measured_one():
    _, network, strategy = tiny("gim", depth=1)
    profiler = Profiler(["warmup", "warmup", "memory", "timed"], network, strategy.make_optimizers(network), CPU,
                        count_flops=True)
    assert profiler.meter_for(0) is profiler.flops
    profiler.flops.counts = {(0, "forward"): 5}  # what the step counted
    assert [profiler.meter_for(s) for s in range(4)] == [NULL_METER, NULL_METER, profiler.memory, profiler.timing]
    again = Profiler(["warmup", "timed"], network, [None], CPU, count_flops=True)
    saved.restore(again, saved.measurements(profiler))  # a resumed run keeps the count and does not count again
    assert again.flops.counts == {(0, "forward"): 5} and again.meter_for(0) is NULL_METER


def test_the_rate_uses_the_timed_steps_that_did_the_counted_work():
    counts = {(0, "forward"): 10, (0, "optimizer"): 0}
    steps = [{(0, "forward"): 2.0, (0, "optimizer"): 1.0}, {(1, "forward"): 9.0}, {(0, "forward"): 4.0,
                                                                                    (0, "optimizer"): 1.0}]
    assert same_work(counts, steps) == [steps[0], steps[2]]
    assert rate(12, [2.0, 4.0], reference=8.0) == {"flops": 12, "achieved_flops_per_s": 4.0, "flops_fraction": 0.5}
    assert rate(12, [], reference=8.0)["achieved_flops_per_s"] is None


def test_the_reference_rate_is_an_fp32_matmul_that_leaves_training_random_streams_alone():
    before = torch.get_rng_state()
    found = reference_rate(CPU, 128)
    assert torch.equal(before, torch.get_rng_state())
    ref = found["reference_matmul"]
    assert ref["precision"] == "fp32" and list(ref["flops_per_s"]) == ["fp32"] and ref["size"] == 128
    assert found["reference_flops_per_s"] == ref["flops_per_s"]["fp32"] > 0


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A gim and a cpc tiny run at depth 2, in one folder as ``gimbench run --out`` fills it (no memory-tracked
    step: nothing here reads a memory figure, and tracking is most of a tiny run's cost)."""
    out = tmp_path_factory.mktemp("flops")
    for model in ("gim", "cpc"):
        run(RunConfig(model=model, preset="tiny", device="cpu", depth=2, steps=4, warmup_steps=1, profile_steps=1,
                      memory_steps=0, batch_size=2, probe=False, quiet=True, out=str(out), name=model))
    return out


def test_results_carry_flops_rates_and_fractions_for_every_module(compared):
    entries, _ = collect([compared])
    assert Counter(e.strategy for e in entries) == Counter(["gim per-module", "cpc"])
    for entry in entries:
        doc, reference = entry.doc, entry.doc["environment"]["reference_flops_per_s"]
        assert reference > 0 and doc["environment"]["reference_matmul"]["size"] == reference_size("tiny")
        for row in [*doc["modules"], doc["step"]]:
            assert row["flops"] > 0 and row["achieved_flops_per_s"] > 0
            assert math.isclose(row["flops_fraction"], row["achieved_flops_per_s"] / reference, rel_tol=1e-12)
        assert doc["step"]["flops"] == sum(m["flops"] for m in doc["modules"])
        assert all(m["flops"] == sum(m["flops_by_phase"].values()) for m in doc["modules"])
    forwards = {e.strategy: [m["flops_by_phase"]["forward"] for m in e.doc["modules"]] for e in entries}
    assert forwards["gim per-module"] == forwards["cpc"]  # the same encoder on the same batch size


def test_summary_and_report_show_utilisation(compared):
    entries, _ = collect([compared])
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(compute_table(result_from_doc(entries[0].doc, entries[0].folder)))
    console.print(comparison_table(entries))
    text = console.export_text()
    for entry in entries:
        assert f"{100 * entry.doc['step']['flops_fraction']:.1f}%" in text
    assert f"fp32 matmul {reference_size('tiny')}^3" in text
    (group,) = groups(entries)
    assert plots.utilisation_bars(group)[:8] == b"\x89PNG\r\n\x1a\n"
