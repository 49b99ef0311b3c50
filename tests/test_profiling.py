"""The profiling meters measure what they claim and leave training untouched.

Memory figures are checked against hand counts on a stack of Linear+ReLU modules whose saved
tensors are known exactly, and against the strategies' structure on the tiny audio encoder:
per-module GIM holds one module's graph, summed GIM every module's, CPC every module's forward.
Timing is checked for bookkeeping (intervals cover the step, every module gets its backward
slice), never against speed thresholds.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
from functools import partial
from itertools import product

import pytest
import torch
from conftest import batch, tiny
from torch import nn

from gimbench.config import RunConfig
from gimbench.models import Network
from gimbench.profiling.floor import alone_peaks
from gimbench.profiling.memory import MemoryMeter
from gimbench.profiling.meter import NULL_METER, PHASES
from gimbench.profiling.profile import Profiler, plan
from gimbench.report.terminal import noise_call
from gimbench.results.schema import step_result
from gimbench.runs.run import resolve_config
from gimbench.strategies import spec_of
from gimbench.trainer import History, Parts, Trainer

CPU = torch.device("cpu")
F32 = 4  # bytes per float32 element
STRATEGIES = [("gim", "per-module"), ("gim", "summed"), ("cpc", "per-module")]  # gim_mode is ignored by cpc


# ---------------------------------------------------------------- helpers


class SquareHead(nn.Module):
    """loss = mean(proj(z) ** 2). Saved for backward: z (the projection's input, already saved by the
    module's ReLU: same storage), proj(z) (pow's input, B x width new bytes); mean saves no tensor,
    the projection's weight is a parameter."""

    WIDTH = 5

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(channels, self.WIDTH)

    def forward(self, module_input: torch.Tensor, module_output: torch.Tensor, labels=None) -> torch.Tensor:
        return (self.proj(module_output) ** 2).mean()


def linear_stack(model: str, dims: tuple[int, ...], seed: int = 0) -> Network:
    """Modules ``Linear(d_k, d_k+1) + ReLU``; a SquareHead on every module (gim) or on the top (cpc)."""
    torch.manual_seed(seed)
    modules = [nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(dims, dims[1:], strict=False)]
    depth = len(modules)
    heads_on = [depth - 1] if model == "cpc" else range(depth)
    return Network(modules, {k: SquareHead(dims[k + 1]) for k in heads_on}, [f"linear{k + 1}" for k in range(depth)])


def dense(model: str) -> dict:
    """Dense local gradients for GIM: these tests check what each schedule keeps alive, which sparse local
    gradients shrink (tested in test_sparse_local_grad.py); cpc's gradients are dense anyway."""
    return {"local_grad": "dense"} if model == "gim" else {}


def strategy_for(model: str, mode: str = "per-module"):
    cfg = resolve_config(RunConfig(model=model, gim_mode=mode, preset="tiny", device="cpu", depth=3))
    spec = spec_of(cfg)
    return spec.trains(cfg, spec)


def memory_steps(network: Network, strategy, x: torch.Tensor, steps: int = 1, seed: int = 0) -> MemoryMeter:
    """``steps`` strategy steps on ``x``, every one under a fresh MemoryMeter's tracking."""
    optimizers = strategy.make_optimizers(network)
    meter = MemoryMeter(network, optimizers, CPU)
    for step in range(steps):
        torch.manual_seed(seed + step)
        with meter.step():
            strategy.step(network, optimizers, x, meter, step)
    return meter


class RandomAudio:
    """A source of fixed-scale random audio crops drawn with the trainer's generator."""

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.3 * torch.randn((batch_size, 1, 5120), generator=generator), torch.zeros(batch_size, dtype=torch.long)


def profiled_fit(model: str, mode: str, kinds: list[str], depth: int = 3):
    """Train tiny audio through a Trainer with a Profiler; (profiler, history, network)."""
    cfg, network, strategy = tiny(model, "audio", gim_mode=mode, depth=depth, **dense(model))
    optimizers = strategy.make_optimizers(network)
    profiler = Profiler(kinds, network, optimizers, CPU)
    trainer = Trainer(Parts(network, strategy, RandomAudio(), optimizers, CPU), cfg.batch_size, cfg.seed,
                      meter_for=profiler.meter_for)
    torch.manual_seed(cfg.seed)
    history = trainer.fit(len(kinds))
    return profiler, history, network


@pytest.fixture
def deterministic():
    """Deterministic kernels (CPU index_put accumulation is otherwise order-dependent), restored after."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


@pytest.fixture
def thread_clock(monkeypatch) -> list[float]:
    """The timers' and the trainer's ``time.perf_counter`` read as this thread's CPU time (every phase, CPU
    backward included, runs on it): time spent waiting for a core on a loaded machine is left out, wherever
    it falls, so what lies outside every phase is the loop's own work. Returns the readings taken."""
    readings: list[float] = []

    def now() -> float:
        readings.append(time.thread_time())
        return readings[-1]

    monkeypatch.setattr(time, "perf_counter", now)
    return readings


# ---------------------------------------------------------------- 1. hand-counted activations

DIMS = (16, 32, 24, 12)
B = 8


def test_activation_bytes_per_module_match_the_hand_count():
    network, x = linear_stack("gim", DIMS), torch.randn(B, DIMS[0])
    meter = memory_steps(network, strategy_for("gim", "per-module"), x)
    intervals = meter.steps[0].intervals
    p = SquareHead.WIDTH
    for k in range(len(network)):
        # Module k saves: Linear its input (B x d_k), ReLU its output (B x d_k+1); its head saves the
        # ReLU output again (same storage: counted once) and proj(z) (B x 5). The loss interval is the
        # one whose peak comes after all of them (its last operations allocate), so at its peak module
        # k's own activations are complete: 4 B (d_k + d_k+1 + 5) = 1696, 1952, 1312 bytes.
        expected = F32 * B * (DIMS[k] + DIMS[k + 1] + p)
        assert intervals[(k, "loss")].tracked.activation_by_module[k] == expected, f"module {k}"
    # A storage saved by two modules counts for both modules but once in the category: at module 1's
    # loss, x (kept by the caller), z0 (module 0's output = module 1's input), z1 and proj(z1) are live.
    assert intervals[(1, "loss")].tracked.by_category["activation"] == F32 * B * (DIMS[0] + DIMS[1] + DIMS[2] + p)
    assert intervals[(1, "loss")].tracked.activation_by_module[0] == F32 * B * (DIMS[0] + DIMS[1])
    # Gradients: when module k's optimizer runs, its whole gradient (one per owned element) is live.
    for k in range(len(network)):
        owned = sum(q.numel() for q in network.owned_parameters(k))
        assert intervals[(k, "optimizer")].tracked.gradient_by_module[k] == F32 * owned, f"module {k}"


def test_forward_interval_peak_counts_the_saved_output_as_activation():
    network, x = linear_stack("gim", DIMS), torch.randn(B, DIMS[0])
    meter = memory_steps(network, strategy_for("gim", "per-module"), x)
    forward = meter.steps[0].intervals[(0, "forward")].tracked
    # The forward's peak is when Linear's output (temporary, B x d_1) and ReLU's output (B x d_1) are
    # both live; ReLU's output is saved for backward at that same live level, so module 0's activations
    # there are its input and its ReLU output: 4 B (d_0 + d_1) = 1536 bytes.
    assert forward.activation_by_module[0] == F32 * B * (DIMS[0] + DIMS[1])


# ---------------------------------------------------------------- 2. activations held by each schedule

WIDE = (32, 256, 192, 128)
WIDE_BATCH = 2048  # activations dominate parameters and optimizer state, so the step peak is an activation peak


def test_step_peak_activations_follow_each_schedule_on_a_linear_stack():
    x = torch.randn(WIDE_BATCH, WIDE[0])
    peak = {}
    for model, mode in STRATEGIES:
        meter = memory_steps(linear_stack(model, WIDE), strategy_for(model, mode), x)
        peak[model, mode] = meter.steps[0].peak.by_category["activation"]
    size = lambda width: F32 * WIDE_BATCH * width  # noqa: E731
    x_bytes, outputs, proj = size(WIDE[0]), [size(d) for d in WIDE[1:]], size(SquareHead.WIDTH)
    own = [size(WIDE[k]) + outputs[k] + proj for k in range(3)]  # as hand-counted in test 1
    every_forward = x_bytes + sum(outputs)  # the modules' own forward activations, shared storages once
    # CPC: one backward through every module, so at its peak every forward graph is alive (plus at most
    # the head's projection, freed early in that backward).
    assert every_forward <= peak["cpc", "per-module"] <= every_forward + proj
    # Summed: every module's graph, heads included, is built before the one backward.
    assert every_forward <= peak["gim", "summed"] <= every_forward + 3 * proj
    # Per-module: at most the largest module's graph, plus the input batch the caller still holds.
    assert max(own) // 2 <= peak["gim", "per-module"] <= x_bytes + max(own)
    assert peak["gim", "summed"] > peak["gim", "per-module"]


def test_step_peak_activations_follow_each_schedule_on_tiny_audio():
    x = batch("audio", 8)
    with torch.no_grad():
        _, network, _ = tiny("gim", "audio", depth=3)
        # The only storages two modules can share: a module's output, saved again by the next one.
        boundary = sum(F32 * network.features(x, k).numel() for k in range(2))
    meters = {}
    for model, mode in STRATEGIES:
        _, network, strategy = tiny(model, "audio", gim_mode=mode, depth=3, **dense(model))
        meters[model, mode] = memory_steps(network, strategy, x)
    peak = {key: m.steps[0].peak for key, m in meters.items()}
    act = {key: snap.by_category["activation"] for key, snap in peak.items()}
    # Each GIM module's own activations with its loss graph built: its loss interval's peak (the head's
    # last few small saves, e.g. cross-entropy's per-step tensors, may come after that peak: ~1%).
    per_module = meters["gim", "per-module"].steps[0]
    own = [per_module.intervals[(k, "loss")].tracked.activation_by_module[k] for k in range(3)]

    # Summed: at its peak every module holds (about) its whole graph, so the step holds their sum.
    for k in range(3):
        assert peak["gim", "summed"].activation_by_module[k] == pytest.approx(own[k], rel=0.05), f"module {k}"
    assert sum(own) - boundary <= act["gim", "summed"] <= 1.02 * sum(own)
    # Per-module: one module holds its graph, the others at most their outputs; about the largest
    # single module's, plus the input batch the caller still holds.
    holding = [k for k in range(3) if peak["gim", "per-module"].activation_by_module.get(k, 0) >= own[k] / 2]
    assert len(holding) == 1, peak["gim", "per-module"].activation_by_module
    assert 0.5 * max(own) <= act["gim", "per-module"] <= max(own) + F32 * x.numel()
    assert act["gim", "summed"] > 2 * act["gim", "per-module"]

    # CPC: one backward through every module; at its peak every module holds its own activations
    # (each as at that module's own peak), and the step holds their sum, shared storages once.
    cpc = meters["cpc", "per-module"]
    profiler = Profiler(["memory"], cpc.network, cpc.optimizers, CPU)
    profiler.memory = cpc
    cpc_own = [profiler.module_memory(k)["memory"]["own_activation_bytes"] for k in range(3)]
    for k in range(3):
        assert peak["cpc", "per-module"].activation_by_module[k] == pytest.approx(cpc_own[k], rel=0.05), f"module {k}"
    assert sum(cpc_own) - boundary <= act["cpc", "per-module"] <= sum(cpc_own)


# ---------------------------------------------------------------- 3. timers


@pytest.mark.parametrize(("model", "mode"), STRATEGIES)
def test_timers_cover_the_step_and_attribute_backward_to_every_module(model, mode, thread_clock):
    kinds = plan(7, warmup=1, timed=3, memory=0)
    profiler, history, network = profiled_fit(model, mode, kinds)
    timed = [i for i, kind in enumerate(kinds) if kind == "timed"]
    assert len(profiler.timing.steps) == len(timed) == 3
    # The trainer (3 readings a step) and the timers (2 an interval) both read it.
    assert len(thread_clock) >= 3 * len(kinds) + 2 * sum(len(step) for step in profiler.timing.steps)
    booked = [sum(step.values()) for step in profiler.timing.steps]
    measured = [history.seconds[i] for i in timed]
    # The meter's intervals are disjoint and lie inside the trainer's window around the step.
    assert all(b <= m for b, m in zip(booked, measured, strict=True))
    # What falls outside every phase is loop overhead only (context managers, detach, list appends,
    # registering the backward hooks): within 15% + 2 ms of the step's CPU time (median
    # over the timed steps).
    assert statistics.median(booked) >= 0.85 * statistics.median(measured) - 2e-3
    for step in profiler.timing.steps:
        for k in range(len(network)):
            for phase in ("forward", "backward", "optimizer"):
                assert (k, phase) in step, (k, phase)
            if model == "cpc" or mode == "summed":  # split out of one backward by gradient events
                assert step[(k, "backward")] > 0, f"module {k} got no backward time"
        loss_modules = {k for k, phase in step if phase == "loss"}
        assert loss_modules == ({len(network) - 1} if model == "cpc" else set(range(len(network))))
    for k in range(len(network)):
        figures = profiler.module_time(k)
        assert set(figures["time_ms"]) == {*PHASES, "total"}
        assert figures["timed_steps"] == 3
        assert figures["time_ms"]["backward"] > 0
        assert figures["time_ms"]["total"] >= figures["time_ms"]["forward"]


# ---------------------------------------------------------------- 4. profiling leaves training untouched


@pytest.mark.parametrize(("model", "mode"), [("gim", "per-module"),
                                           pytest.param("cpc", "per-module", marks=pytest.mark.slow)])
def test_profiling_does_not_change_training(model, mode, deterministic):
    kinds = plan(6, warmup=1, timed=1, memory=2)
    assert {"memory", "timed", "plain"} <= set(kinds)
    profiled, profiled_history, profiled_net = profiled_fit(model, mode, kinds, depth=2)
    assert len(profiled.memory.steps) == 2 and len(profiled.timing.steps) == 1
    bare, bare_history, bare_net = profiled_fit(model, mode, ["warmup"] * len(kinds), depth=2)  # null meter only
    assert bare.meter_for(0) is NULL_METER
    assert profiled_history.losses == bare_history.losses
    for (name, a), (_, b) in zip(profiled_net.named_parameters(), bare_net.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(profiled.optimizers, bare.optimizers, strict=True):  # Adam's moments too
        for state_a, state_b in zip(a.state.values(), b.state.values(), strict=True):
            assert all(torch.equal(state_a[key], state_b[key]) for key in state_b)


# ---------------------------------------------------------------- 5. plan


def test_plan_examples():
    assert plan(10, 2, 3, 2) == ["warmup"] * 2 + ["memory"] * 2 + ["plain", "timed"] * 3
    # Timed steps spread over the whole run, each after a plain one: 10 steps after memory, 2 timed.
    assert plan(12, 1, 2, 1) == ["warmup", "memory"] + (["plain", "timed"] + ["plain"] * 3) * 2
    assert plan(3, 5, 2, 2) == ["warmup"] * 3
    assert plan(4, 1, 5, 2) == ["warmup", "memory", "memory", "plain"]
    assert plan(5, 0, 0, 0) == ["plain"] * 5
    assert plan(1, 0, 1, 0) == ["plain"]
    # Without warm-up, the first step creates the optimizers' state: memory steps begin after it.
    assert plan(4, 0, 1, 2) == ["plain", "memory", "memory", "timed"]
    # A schedule that trains modules in turn (sequential GIM, 3 modules over 9 steps): each module's memory
    # step is its second step, once its optimizer state exists.
    turns = lambda step: (step // 3,)  # noqa: E731
    assert plan(9, 1, 0, 1, trains=turns) == ["warmup", "memory", "plain", "plain", "memory", "plain", "plain",
                                              "memory", "plain"]
    assert plan(9, 1, 0, 2, trains=turns) == ["warmup", "memory", "memory", "plain", "memory", "memory", "plain",
                                              "memory", "memory"]


def test_plan_respects_order_and_counts_for_every_small_run():
    for steps, warmup, timed, memory in product(range(1, 14), range(4), range(7), range(4)):
        kinds = plan(steps, warmup, timed, memory)
        assert len(kinds) == steps
        w = min(warmup, steps)
        first = max(w, 1)  # a memory step follows at least one step that trained (and created optimizer state)
        m = min(memory, steps - first)
        assert kinds[:w] == ["warmup"] * w
        assert kinds[first : first + m] == ["memory"] * m
        assert kinds.count("memory") == m
        rest = [kind for kind in kinds[w:] if kind != "memory"]
        assert set(rest) <= {"plain", "timed"}
        assert rest.count("timed") == min(timed, len(rest) // 2)
        for i, kind in enumerate(rest):  # every timed step follows a plain one
            if kind == "timed":
                assert i > 0 and rest[i - 1] == "plain"


def test_timed_steps_are_spread_over_the_whole_run():
    """The default run's plan: timed steps come from every part of the run, evenly, not from its start only; so
    do plain ones (sequential GIM, whose modules train in turn, gets timed steps in every module's share)."""
    kinds = plan(2000, 5, 50, 2)
    timed = [step for step, kind in enumerate(kinds) if kind == "timed"]
    assert len(timed) == 50 and timed[0] < 50 and timed[-1] > 1950
    gaps = {b - a for a, b in itertools.pairwise(timed)}
    assert max(gaps) - min(gaps) <= 1
    turns = lambda step: (step * 3 // 300,)  # noqa: E731
    shares = plan(300, 1, 30, 1, trains=turns)
    assert [shares[i : i + 100].count("timed") for i in (0, 100, 200)] == [10, 10, 10]


def step_times(timed: list[float], plain: list[float]):
    """The step figures of a run whose steps after one warm-up took these seconds, timed ones first."""
    kinds = ["warmup"] + ["timed"] * len(timed) + ["plain"] * len(plain)
    seconds = [1.0, *timed, *plain]
    return step_result(History(seconds=seconds, data_seconds=[0.0] * len(seconds)), kinds, 8, {})


def test_a_timer_overhead_is_called_noise_only_within_the_steps_spread():
    rng = random.Random(0)
    plain = [rng.gauss(0.060, 0.006) for _ in range(200)]  # 10% spread
    same = step_times([rng.gauss(0.060, 0.006) for _ in range(50)], plain)
    faster = step_times([rng.gauss(0.048, 0.006) for _ in range(50)], plain)  # the issue's -20%
    low, high = same.timer_overhead_interval
    assert low < same.timer_overhead < high and low <= 0 <= high
    assert "within noise" in noise_call(same)
    low, high = faster.timer_overhead_interval
    assert low < faster.timer_overhead < high < 0
    assert "beyond noise" in noise_call(faster)
    assert "too few steps" in noise_call(step_times([0.05], plain))


# ---------------------------------------------------------------- 6. floor, measured apart from the step it judges


def floors_and_peaks(model: str, mode: str, steps: int = 9, depth: int = 3):
    """A tiny audio run's profiler with memory steps over the whole schedule and the floor measured."""
    cfg, network, strategy = tiny(model, "audio", gim_mode=mode, depth=depth, steps=steps, **dense(model))
    optimizers = strategy.make_optimizers(network)
    kinds = plan(steps, 1, 0, 1, trains=lambda step: strategy.trained_at(step, depth))
    profiler = Profiler(kinds, network, optimizers, CPU,
                        measure_floor=partial(alone_peaks, strategy.train_alone, network, optimizers, device=CPU))
    trainer = Trainer(Parts(network, strategy, RandomAudio(), optimizers, CPU), cfg.batch_size, cfg.seed,
                      meter_for=profiler.meter_for, after_batch=profiler.after_step)
    torch.manual_seed(cfg.seed)
    trainer.fit(steps)
    return profiler


@pytest.mark.slow  # four profiled runs' memory steps; test_floor_measurement_leaves_training_untouched is fast
def test_the_floor_is_measured_apart_and_summed_holds_the_other_modules_graphs_above_it():
    profilers = {(model, mode): floors_and_peaks(model, mode) for model, mode in STRATEGIES}
    memory = {key: p.step_memory() for key, p in profilers.items()}
    greedy = [memory["gim", mode] for mode in ("per-module", "summed")]
    # The floor is each module trained alone on the same network and batch: it does not depend on the
    # schedule whose steps it judges, so every GIM schedule gets the same one.
    assert greedy[0]["floor_bytes"] == greedy[1]["floor_bytes"] == floors_and_peaks("gim", "sequential").floor()
    assert greedy[0]["floor_by_module_bytes"] == greedy[1]["floor_by_module_bytes"]
    for key, m in memory.items():
        assert m["memory_steps"] >= 1
        assert m["resident_bytes"] < m["floor_bytes"], key
    # Per-module GIM holds one module's graph at a time: on its floor, plus at most the input batch the
    # caller keeps (5120 samples x 8 x 4 bytes = 160 KiB, 1.2% of the floor here).
    assert 1.0 <= memory["gim", "per-module"]["peak_over_floor"] < 1.02
    # Summed holds every module's graph at its one backward. Training the largest module alone needs its
    # graph plus backward's gradients and temporaries (floor - resident); summed's peak holds all graphs
    # at once, which alone exceed that by more than a third of the floor here.
    summed = memory["gim", "summed"]
    top = max(profilers["gim", "summed"].memory.steps, key=lambda s: s.allocator_peak)
    every_graph = top.peak.by_category["activation"]
    assert summed["resident_bytes"] + every_graph - summed["floor_bytes"] > summed["floor_bytes"] / 3
    assert summed["peak_memory_bytes"] >= summed["resident_bytes"] + every_graph
    assert summed["peak_over_floor"] > 1.3
    # CPC keeps every module's forward graph for its one backward: above the floor too.
    assert memory["cpc", "per-module"]["peak_over_floor"] > 1.1


def test_floor_measurement_leaves_training_untouched(deterministic):
    measured = floors_and_peaks("gim", "per-module", steps=4)
    assert measured.floor_by_module is not None
    cfg, network, strategy = tiny("gim", "audio", depth=3, steps=4, **dense("gim"))
    trainer = Trainer(Parts(network, strategy, RandomAudio(), strategy.make_optimizers(network), CPU),
                      cfg.batch_size, cfg.seed)
    torch.manual_seed(cfg.seed)
    trainer.fit(4)
    for (name, a), (_, b) in zip(measured.network.named_parameters(), network.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(measured.optimizers, trainer.optimizers, strict=True):
        for state_a, state_b in zip(a.state.values(), b.state.values(), strict=True):
            assert all(torch.equal(state_a[key], state_b[key]) for key in state_b)


def test_sequential_memory_steps_cover_every_module_with_its_optimizer_state():
    profiler = floors_and_peaks("gim", "sequential", steps=9)
    assert profiler.kinds.count("memory") == 3
    network = profiler.network
    adam = [2 * F32 * sum(p.numel() for p in network.owned_parameters(k)) for k in range(3)]
    rows = [profiler.module_memory(k)["memory"] for k in range(3)]
    # Each module's row comes from its own training step, after its Adam state was made: the optimizer
    # state live at its peak holds its own and every lower module's moments (Adam's step counters are a
    # few bytes more); the top module's row holds every module's.
    for k, row in enumerate(rows):
        assert row["phase_peak_bytes"].keys() >= {"forward", "loss", "backward", "optimizer"}, k
        assert sum(adam[: k + 1]) <= row["optimizer_bytes"] < sum(adam[: k + 1]) + 1024, k
    assert rows[2]["optimizer_bytes"] >= sum(adam)
    step = profiler.step_memory()
    assert step["peak_memory_bytes"] == max(row["peak_bytes"] for row in rows)


# ---------------------------------------------------------------- 7. CUDA allocator cross-check


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_allocator_peak_covers_tracked_bytes_on_cuda():
    cuda = torch.device("cuda")
    cfg = resolve_config(RunConfig(model="gim", modality="audio", preset="tiny", device="cuda", depth=3))
    _, network, strategy = tiny("gim", "audio", depth=3)
    network.to(cuda)
    optimizers = strategy.make_optimizers(network)
    meter = MemoryMeter(network, optimizers, cuda)
    x = batch("audio", cfg.batch_size).to(cuda)
    for step in range(2):  # the second step has optimizer state resident
        with meter.step():
            strategy.step(network, optimizers, x, meter, step)
    record = meter.steps[-1]
    assert record.allocator_peak is not None and record.allocator_peak > 0
    # The allocator sees every device byte (rounded up to blocks); the tracker counts device tensors only.
    assert record.allocator_peak >= record.peak.live
    for key, interval in record.intervals.items():
        assert interval.allocator_peak >= interval.tracked.live, key
        assert interval.reserved_peak >= interval.allocator_peak, key
