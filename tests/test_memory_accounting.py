"""Memory figures add up: the allocator's peak counts what the tensor tracker cannot see (kernels' scratch),
the tracker never exceeds it, and the CUDA and NVML logic is right, reached through fakes on the CPU.
"""

from __future__ import annotations

import gc
import time
import weakref
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny
from test_profiling import CPU, RandomAudio, floors_and_peaks
from torch import nn

from gimbench.models import Network
from gimbench.profiling.allocator import CudaAllocatorWatch
from gimbench.profiling.memory import MemoryMeter
from gimbench.profiling.nvml import NvmlSampler, device_handle
from gimbench.profiling.profile import Profiler, plan
from gimbench.profiling.tracker import CATEGORIES, TensorTracker
from gimbench.trainer import Parts, Trainer

SCRATCH = 3 * 2**20  # bytes the op below allocates inside its kernel and frees before returning


@torch.library.custom_op("gimbench_test::scaled", mutates_args=())
def scaled(x: torch.Tensor) -> torch.Tensor:
    """2 x, computed through a scratch buffer of SCRATCH bytes that no operator returns."""
    scratch = torch.full((SCRATCH // 4,), 2.0)
    out = torch.empty_like(x)
    torch.mul(x, scratch[0], out=out)
    return out


class Scaled(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scaled(x)


def test_kernel_scratch_is_counted_where_the_tracker_alone_would_miss_it():
    network = Network([Scaled()], {}, ["scaled"])
    x = torch.randn(256, 256)  # made before the step: live throughout, never seen by the tracker
    meter = MemoryMeter(network, [None], CPU)
    with meter.step(), meter.phase(0, "forward"):
        y = network.encoder[0](x)
    assert torch.equal(y, 2 * x)
    out_bytes = 4 * x.numel()
    interval = meter.steps[0].intervals[(0, "forward")]
    # The tracker sees the op's output only; the allocator also handed out the scratch, live with it.
    assert interval.tracked.live == out_bytes
    assert interval.allocator_peak == out_bytes + SCRATCH
    assert meter.steps[0].allocator_peak == out_bytes + SCRATCH
    profiler = Profiler(["memory"], network, [None], CPU)
    profiler.memory = meter
    row = profiler.module_memory(0)["memory"]
    assert (row["peak_bytes"], row["tracked_peak_bytes"], row["untracked_bytes"]) == (
        out_bytes + SCRATCH, out_bytes, SCRATCH)


def test_garbage_of_an_earlier_profiled_step_collected_mid_step_lowers_no_level():
    # The CPU allocator's reporter remembers the blocks allocated while any profiler session ran, so it reports
    # the free of a previous memory step's garbage (a reference cycle) when the collector reclaims it during
    # this step. That memory is not in this step's base: before the fix the level fell by its 4 MiB, below the
    # step's own output, and the tracker's figure exceeded the allocator's.
    network = Network([Scaled()], {}, ["scaled"])
    x = torch.randn(64, 64)
    meter = MemoryMeter(network, [None], CPU)
    gc.disable()
    try:
        with meter.step(), meter.phase(0, "forward"):
            cycle = {"garbage": torch.empty(2**20)}
            cycle["self"] = cycle
            del cycle
        with meter.step(), meter.phase(0, "forward"):
            gc.collect()
            y = network.encoder[0](x)
    finally:
        gc.enable()
    interval = meter.steps[1].intervals[(0, "forward")]
    assert interval.tracked.live == y.untyped_storage().nbytes() == 4 * x.numel()
    assert interval.allocator_peak == interval.tracked.live + SCRATCH


# A finding of 2026-12-07: the tracker booked up to 48 KiB more tensors in one interval than the CPU allocator's peak
# for it (gim summed's (1, backward) in 1 of 3 full-suite runs; cpc's (2, forward) once under `make test`'s two
# workers), never alone. The cause, found and fixed the same day, is the test above: a previous memory step's
# garbage freed mid-step by the collector, which depends on the order of what ran before. The margin stays as a
# guard in these real runs until full-suite runs confirm no other cause; docs/profiling.md.
TRACKER_MARGIN = 64 * 2**10


def test_conv_backward_scratch_is_untracked_and_every_interval_adds_up():
    # End-to-end CPC on tiny audio: conv backward whose input needs a gradient allocates scratch.
    profiler = floors_and_peaks("cpc", "per-module", steps=3)
    step = profiler.memory.steps[0]
    untracked = {key: i.allocator_peak - i.tracked.live for key, i in step.intervals.items()}
    assert max(untracked[(k, "backward")] for k in (1, 2)) > 64 * 1024
    for key, interval in step.intervals.items():
        assert sum(interval.tracked.by_category[c] for c in CATEGORIES) == interval.tracked.live, key
        assert interval.tracked.live <= interval.allocator_peak + TRACKER_MARGIN, key
    for k in range(3):
        row = profiler.module_memory(k)["memory"]
        assert row["untracked_bytes"] >= 0
        assert sum(row[f"{c}_bytes"] for c in CATEGORIES) == row["tracked_peak_bytes"]


@pytest.mark.parametrize(("model", "mode"), [("gim", "per-module"), ("gim", "summed"), ("gim", "sequential"),
                                             ("cpc", "per-module")])
def test_tracker_never_exceeds_the_allocator_in_a_real_run(model, mode):
    profiler = floors_and_peaks(model, mode, steps=6)
    assert profiler.memory.steps
    for record in profiler.memory.steps:
        assert record.peak.live <= record.allocator_peak
        for key, interval in record.intervals.items():
            assert interval.tracked.live <= interval.allocator_peak + TRACKER_MARGIN, key
            assert interval.allocator_peak <= record.allocator_peak, key


# ---------------------------------------------------------------- CUDA logic, fed with numbers


class ScriptedAllocator:
    """Stands in for torch.cuda's peak counters: ``read`` returns the next scripted peak."""

    def __init__(self, peaks: list[int]) -> None:
        self.peaks, self.resets = list(peaks), 0

    def read(self) -> tuple[int, int]:
        peak = self.peaks.pop(0)
        return peak, peak + 100

    def reset(self) -> None:
        self.resets += 1


class Idle:
    @staticmethod
    def sampling():
        from contextlib import nullcontext

        return nullcontext()

    peak_bytes, note = None, "fake"


def test_cuda_watch_keeps_the_highest_slice_and_every_gap():
    # Two linear modules trained end to end: one backward split into slices at gradient events.
    torch.manual_seed(0)
    network = Network([nn.Linear(4, 4), nn.Linear(4, 4)], {}, ["a", "b"])
    x = torch.randn(2, 4)
    # Readings (each the peak since the previous one): step start; forward 0 open, close; forward 1 open,
    # close; backward open; then per gradient (b.weight, b.bias, a.weight, a.bias) a close and a reopen;
    # the last slice's close; step end.
    fake = ScriptedAllocator([10, 11, 50, 12, 60, 13, 70, 14, 90, 15, 30, 17, 40, 18, 19, 99])
    meter = MemoryMeter(network, [None, None], torch.device("cuda"), watch=CudaAllocatorWatch(
        read=fake.read, reset=fake.reset, level=lambda: 0, clock=time.perf_counter), nvml=Idle())
    with meter.step():
        h = x
        for k in range(2):
            with meter.phase(k, "forward"):
                h = network.encoder[k](h)
        with meter.backward(network):
            h.sum().backward()
    record = meter.steps[0]
    assert fake.peaks == []  # every reading was taken
    assert record.intervals[(0, "forward")].allocator_peak == 50
    assert record.intervals[(1, "forward")].allocator_peak == 60
    # Module b's backward slices peaked at 70 and 90 (its two gradients), module a's at 30, 40 and 19 (the
    # slice after its last gradient): each module keeps its highest slice.
    assert record.intervals[(1, "backward")].allocator_peak == 90
    assert record.intervals[(0, "backward")].allocator_peak == 40
    assert record.intervals[(1, "backward")].reserved_peak == 190
    # The step's peak includes the gap after the last interval (99), which no interval holds.
    assert record.allocator_peak == 99
    assert record.timeline.peak == 99  # the timeline's points hold every reading


def test_cuda_watch_interval_and_step_peaks_from_readings():
    fake = ScriptedAllocator([5, 7, 30, 8, 25, 6])
    watch = CudaAllocatorWatch(read=fake.read, reset=fake.reset, level=lambda: 0, clock=time.perf_counter)
    with watch.step():
        marks = [watch.mark() for _ in range(6)]
    assert watch.peak(marks[1], marks[2]) == (30, 130)
    assert watch.peak(marks[1], marks[4]) == (30, 130)
    assert watch.peak(marks[3], marks[4]) == (25, 125)
    assert watch.peak(marks[0], marks[5]) == (30, 130)  # the whole step, as the meter asks for it
    assert fake.resets == 7  # at the step's start and after every reading


def test_module_peak_is_chosen_by_allocator_bytes_over_all_memory_steps():
    from gimbench.profiling.memory import Interval, StepMemory
    from gimbench.profiling.tracker import Snapshot

    def interval(tracked: int, allocated: int) -> Interval:
        return Interval(Snapshot(live=tracked), allocated, None)

    network = Network([nn.Linear(2, 2)], {}, ["a"])
    profiler = Profiler(["memory", "memory"], network, [None], CPU)
    profiler.memory.steps = [
        StepMemory(0, Snapshot(live=900), 1000, None, intervals={(0, "forward"): interval(900, 950),
                                                                  (0, "backward"): interval(500, 1000)}),
        StepMemory(0, Snapshot(live=800), 1500, None, intervals={(0, "forward"): interval(800, 1500)}),
    ]
    row = profiler.module_memory(0)["memory"]
    # The tracker's largest interval (900) is not the allocator's (1500, in the second step).
    assert (row["peak_bytes"], row["tracked_peak_bytes"], row["peak_phase"]) == (1500, 800, "forward")
    assert row["phase_peak_bytes"] == {"forward": 1500, "backward": 1000}
    assert profiler.step_memory()["peak_memory_bytes"] == 1500  # the highest step, not the last


# ---------------------------------------------------------------- saved tensors, devices


def test_saved_outputs_are_freed_without_the_garbage_collector_after_a_failed_step():
    network = Network([nn.Sequential(nn.Linear(64, 64), nn.Sigmoid())], {}, ["a"])  # sigmoid saves its output
    meter = MemoryMeter(network, [None], CPU)
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(RuntimeError, match="between forward and backward"), meter.step():
            with meter.phase(0, "forward"):
                out = network.encoder[0](torch.randn(32, 64))
            alive = weakref.ref(out)
            del out
            raise RuntimeError("failed between forward and backward")
        assert alive() is None  # no reference cycle through the saved output
    finally:
        gc.enable()


def test_the_tracker_counts_only_its_own_devices_storages():
    tracker = TensorTracker("cuda")
    with tracker:
        a = torch.ones(1000)
        b = a * 2
    assert (tracker.now.live, tracker.step_peak.live) == (0, 0)
    with TensorTracker("cpu") as cpu:
        c = b * 2
        assert cpu.now.live == c.untyped_storage().nbytes()


# ---------------------------------------------------------------- NVML


class FakeNvml:
    """Two GPUs in NVML's order; CUDA_VISIBLE_DEVICES=1 makes CUDA's device 0 NVML's device 1."""

    def __init__(self, used: list[int], known_uuid: bool = True) -> None:
        self.used, self.known_uuid, self.calls = list(used), known_uuid, []

    def nvmlInit(self) -> None:
        self.calls.append("init")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetHandleByIndex(self, index: int):
        raise AssertionError("the CUDA index is not NVML's")

    def nvmlDeviceGetHandleByUUID(self, uuid: str):
        if not self.known_uuid:
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return {"GPU-0000-b": "nvml1"}[uuid]

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str):
        return {"00000000:3B:00.0": "nvml1-by-bus"}[bus_id]

    def nvmlDeviceGetMemoryInfo(self, handle):
        assert handle in ("nvml1", "nvml1-by-bus")
        value = self.used.pop(0) if len(self.used) > 1 else self.used[0]
        return SimpleNamespace(used=value)


PROPERTIES = SimpleNamespace(uuid="0000-b", pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0)


def test_nvml_finds_the_device_by_uuid_then_bus_id_never_by_index():
    assert device_handle(FakeNvml([0]), PROPERTIES) == "nvml1"
    assert device_handle(FakeNvml([0], known_uuid=False), PROPERTIES) == "nvml1-by-bus"


def test_nvml_sampler_reports_the_peak_of_its_samples():
    nvml = FakeNvml([100, 700, 300, 200])
    sampler = NvmlSampler(torch.device("cuda", 0), nvml=nvml, properties=PROPERTIES, seconds=0.001)
    with sampler.sampling():
        while len(nvml.used) > 1:
            pass
    assert sampler.peak_bytes == 700 and sampler.samples >= 4
    assert nvml.calls == ["init", "shutdown"]
    assert "peak of" in sampler.note and "device-wide" in sampler.note
    cpu = NvmlSampler(CPU)
    with cpu.sampling():
        pass
    assert cpu.peak_bytes is None and cpu.note == "not a CUDA device"


def test_a_missing_nvml_is_a_note():
    class Broken(FakeNvml):
        def nvmlInit(self) -> None:
            raise RuntimeError("NVML Shared Library Not Found")

    sampler = NvmlSampler(torch.device("cuda", 0), nvml=Broken([0]), properties=PROPERTIES)
    with sampler.sampling():
        pass
    assert sampler.peak_bytes is None and sampler.note.startswith("NVML unavailable: NVML Shared Library")


def test_profiled_run_reports_allocator_figures_and_no_floor_without_isolation():
    cfg, network, strategy = tiny("gim", "audio", depth=2)
    optimizers = strategy.make_optimizers(network)
    profiler = Profiler(plan(3, 1, 0, 1), network, optimizers, CPU)
    trainer = Trainer(Parts(network, strategy, RandomAudio(), optimizers, CPU), cfg.batch_size, cfg.seed,
                      meter_for=profiler.meter_for)
    trainer.fit(3)
    step = profiler.step_memory()
    assert profiler.backend == "cpu-allocator"
    assert step["untracked_bytes"] >= 0 and step["tracked_peak_bytes"] > step["resident_bytes"]
    assert step["floor_bytes"] is None and step["peak_over_floor"] is None  # no floor measurement given: no floor
