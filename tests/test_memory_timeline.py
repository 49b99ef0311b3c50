"""The memory timeline of a run's peak memory step: its maximum is the reported peak to the byte, its spans are
the meter's intervals, it is cut to a few thousand points without losing the peak, it survives a resume, and
its files and the report's side-by-side picture are written."""

from __future__ import annotations

import csv
import json
import random

import pytest
import torch
from test_profiling import DIMS, STRATEGIES, linear_stack, memory_steps, strategy_for

from gimbench.config import RunConfig
from gimbench.profiling import saved
from gimbench.profiling.allocator import CudaAllocatorWatch
from gimbench.profiling.profile import Profiler
from gimbench.profiling.timeline import POINTS, Span, envelope, spans
from gimbench.report import timeline as picture
from gimbench.report.collect import collect
from gimbench.report.export import write_report
from gimbench.report.groups import groups
from gimbench.runs.run import run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


CPU = torch.device("cpu")


def profiler_of(model: str, mode: str, steps: int = 2) -> Profiler:
    """A profiler holding ``steps`` memory steps of a Linear+ReLU stack (the second with optimizer state)."""
    network = linear_stack(model, DIMS)
    meter = memory_steps(network, strategy_for(model, mode), torch.randn(8, DIMS[0]), steps=steps)
    profiler = Profiler(["memory"] * steps, network, meter.optimizers, CPU)
    profiler.memory.steps = meter.steps
    return profiler


@pytest.mark.parametrize(("model", "mode"), STRATEGIES)
def test_the_timeline_of_the_reported_step_peaks_at_its_peak_to_the_byte(model, mode):
    profiler = profiler_of(model, mode)
    for step in profiler.memory.steps:
        assert step.timeline.peak == step.allocator_peak
    timeline = profiler.timeline()
    assert timeline.peak == profiler.step_memory()["peak_memory_bytes"]
    assert timeline.times_ns == sorted(timeline.times_ns) and timeline.times_ns[0] == 0
    assert timeline.resident == profiler.step_memory()["resident_bytes"] > 0
    assert 0 < timeline.peak_ns <= timeline.duration_ns
    # Every interval the meter booked is a span, in time order, inside the step.
    assert {(s.module, s.phase) for s in timeline.spans} == set(profiler.memory.steps[-1].intervals)
    starts = [s.start_ns for s in timeline.spans]
    assert starts == sorted(starts) and all(0 <= s.start_ns <= s.end_ns <= timeline.duration_ns
                                            for s in timeline.spans)


def test_the_timeline_is_the_step_with_the_reported_peak():
    profiler = profiler_of("gim", "per-module", steps=3)
    first, second, third = profiler.memory.steps
    second.allocator_peak = first.allocator_peak = third.allocator_peak + 1  # the first of equals is reported
    assert profiler.timeline() is first.timeline


def test_consecutive_slices_of_one_interval_are_one_span():
    intervals = [((1, "backward"), 100, 110), ((1, "backward"), 111, 130), ((0, "backward"), 131, 150),
                 ((1, "backward"), 151, 160)]
    assert spans(intervals, 100) == [Span(1, "backward", 0, 30), Span(0, "backward", 31, 50),
                                     Span(1, "backward", 51, 60)]


def test_the_envelope_keeps_the_maximum_and_the_order_within_the_limit():
    rng = random.Random(0)
    levels = [rng.randrange(10**6) for _ in range(3 * POINTS + 7)]
    levels[12345] = 2 * 10**6  # the peak, alone in its run of points
    times = list(range(0, 10 * len(levels), 10))
    kept_times, kept = envelope(times, levels)
    assert len(kept) <= POINTS and max(kept) == max(levels) and min(kept) == min(levels)
    assert kept_times == sorted(set(kept_times)) and kept[kept_times.index(123450)] == 2 * 10**6
    assert envelope(times[:10], levels[:10]) == (times[:10], levels[:10])  # short: as it is


class FakeCuda:
    """Scripted CUDA readings: per mark the peak since the last reset, the level now and the time."""

    def __init__(self, peaks: list[int], levels: list[int]) -> None:
        self.peaks, self.levels, self.seconds = list(peaks), list(levels), 0.0

    def read(self) -> tuple[int, int]:
        return self.peaks.pop(0), 0

    def level(self) -> int:
        return self.levels.pop(0)

    def clock(self) -> float:
        self.seconds += 0.002
        return self.seconds


def test_on_cuda_the_series_is_the_levels_at_the_marks_and_each_stretchs_peak_halfway():
    fake = FakeCuda(peaks=[9, 40, 30, 25], levels=[9, 20, 12, 10])
    watch = CudaAllocatorWatch(read=fake.read, reset=lambda: None, level=fake.level, clock=fake.clock)
    with watch.step():
        marks = [watch.mark() for _ in range(4)]
    series = watch.series(marks[0], marks[3])
    assert [level for _, level in series] == [9, 40, 20, 30, 12, 25, 10]
    assert series[1][0] == (series[0][0] + series[2][0]) // 2
    assert max(level for _, level in series) == watch.peak(marks[0], marks[3])[0]


def test_the_timeline_survives_a_checkpoint(tmp_path):
    profiler = profiler_of("gim", "per-module")
    torch.save(saved.measurements(profiler), tmp_path / "profile.pt")
    restored = Profiler(["memory"] * 2, profiler.network, profiler.optimizers, CPU)
    saved.restore(restored, torch.load(tmp_path / "profile.pt", weights_only=True))
    assert restored.timeline() == profiler.timeline()


def tiny_run(out, model: str) -> None:
    run(RunConfig(model=model, depth=2, preset="tiny", device="cpu", steps=3, warmup_steps=1, profile_steps=0,
                  memory_steps=1, batch_size=2, seed=0, probe=False, quiet=True, out=str(out), name=model))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("timeline")
    for model in ("cpc", "gim"):
        tiny_run(out, model)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cpc", "gim"])
def test_a_run_writes_its_timeline_whose_csv_maximum_is_the_step_peak(runs, model):
    folder = runs / model
    doc = json.loads((folder / "results.json").read_text())
    block = doc["memory_timeline"]
    header, *rows = list(csv.reader((folder / block["csv"]).open()))
    assert header == ["t_ms", "allocated_bytes"] and 1 < len(rows) <= POINTS
    assert max(int(b) for _, b in rows) == doc["step"]["peak_memory_bytes"] == block["peak_bytes"]
    assert (folder / block["png"]).read_bytes().startswith(PNG_MAGIC)
    phases = {(s["module"], s["phase"]) for s in block["spans"]}
    assert {(k, p) for k in (0, 1) for p in ("forward", "backward")} <= phases
    assert {s["name"] for s in block["spans"]} == {m["name"] for m in doc["modules"]}


@pytest.mark.slow
def test_a_comparison_report_draws_the_methods_timelines_side_by_side(runs, tmp_path):
    entries, sweeps = collect([runs])
    index = write_report(entries, sweeps, tmp_path, [str(runs)])
    assert (index.parent / "plots" / "memory-timeline-1.png").read_bytes().startswith(PNG_MAGIC)
    assert "memory over one step, methods side by side" in index.read_text()
    # A run whose results.json has no timeline (written before it existed) draws nothing.
    for entry in entries:
        entry.doc.pop("memory_timeline")
    assert picture.compare(groups(entries)[0]) is None
