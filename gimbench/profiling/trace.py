"""``gimbench run --trace``: one training step as a Chrome/Perfetto trace with a track of per-module phases,
a counter track of the step's allocated memory (every device), and on CUDA a memory snapshot that PyTorch's
memory_viz (https://pytorch.org/memory_viz) opens.

The traced step is the last warm-up step: never measured, so the profiler's overhead changes no reported
figure. torch.profiler records the operators and exports the trace; this meter adds one event per
(module, phase) on a track of its own, timed on the clock the exporter uses (wall-clock nanoseconds since
the trace's ``baseTimeNanoseconds``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from gimbench.device import sync
from gimbench.profiling.meter import IntervalMeter, Key

TRACE = "trace.json"
SNAPSHOT = "memory_snapshot.pickle"


def traced_step(kinds: list[str]) -> int | None:
    """The step to trace: the last warm-up step of the plan; ``None`` without warm-up steps."""
    warm = [k for k, kind in enumerate(kinds) if kind == "warmup"]
    return warm[-1] if warm else None


class TraceMeter(IntervalMeter):
    """Profiles one step; on leaving it writes ``trace.json`` (and on CUDA the memory snapshot) into
    ``folder`` and keeps what it wrote in ``record`` (results.json's ``trace`` block)."""

    def __init__(self, folder: Path, names: list[str], device: torch.device, step: int) -> None:
        self.folder, self.names, self.device, self.step_index = Path(folder), names, device, step
        self.wait = sync(device)
        self.cuda = device.type == "cuda"
        self.intervals: list[tuple[Key, int, int]] = []
        self.record: dict | None = None
        self._start = 0

    def _now(self) -> int:
        self.wait()  # the phase's kernels belong inside its span
        return time.time_ns()

    def _begin(self) -> None:
        self._start = self._now()

    def _end(self, key: Key) -> None:
        self.intervals.append((key, self._start, self._now()))

    @contextmanager
    def step(self) -> Iterator[None]:
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        if self.cuda:
            torch.cuda.memory._record_memory_history(max_entries=100_000)
        with profile(activities=activities, profile_memory=True) as prof:
            yield
        trace = self.folder / TRACE
        prof.export_chrome_trace(str(trace))
        self._add_phases(trace)
        self.record = {"file": TRACE, "step": self.step_index, "events": len(self.phase_events(0)),
                       **self._snapshot()}

    def _snapshot(self) -> dict:
        if not self.cuda:
            return {"memory_snapshot": None,
                    "memory_snapshot_note": f"skipped: the run is on {self.device.type}; PyTorch records "
                                            "allocator history (memory_viz snapshots) on CUDA only"}
        torch.cuda.memory._dump_snapshot(str(self.folder / SNAPSHOT))
        torch.cuda.memory._record_memory_history(enabled=None)
        return {"memory_snapshot": SNAPSHOT, "memory_snapshot_note": "open it at https://pytorch.org/memory_viz"}

    def phase_events(self, base_ns: int) -> list[dict]:
        """One Chrome trace event per (module, phase): from its first slice's start to its last slice's end
        (a single backward through several modules comes in slices), with its busy time and slice count."""
        spans: dict[Key, list[tuple[int, int]]] = {}
        for key, start, end in self.intervals:
            spans.setdefault(key, []).append((start, end))
        events = []
        for (k, phase), slices in spans.items():
            start, end = slices[0][0], slices[-1][1]
            events.append({"ph": "X", "cat": "gimbench", "name": f"{k} {self.names[k]} {phase}", "pid": os.getpid(),
                           "tid": "gimbench modules", "ts": (start - base_ns) / 1e3, "dur": (end - start) / 1e3,
                           "args": {"module": k, "module_name": self.names[k], "phase": phase,
                                    "slices": len(slices), "busy_ms": sum(b - a for a, b in slices) / 1e6}})
        return events

    def _add_phases(self, path: Path) -> None:
        doc = json.loads(path.read_text())
        events = doc.get("traceEvents", [])
        doc["traceEvents"] = events + self.phase_events(doc.get("baseTimeNanoseconds", 0)) + memory_counters(events)
        path.write_text(json.dumps(doc))


def memory_counters(events: list[dict]) -> list[dict]:
    """The step's memory over time as a counter track (``"ph": "C"``, one per device type), drawn by Perfetto and
    chrome://tracing as a filled graph above the operators: the profiler's ``[memory]`` instant events (one per
    allocation and free, ``profile_memory=True``), each giving the bytes allocated since the trace began."""
    counters = []
    for e in events:
        args = e.get("args") or {}
        if e.get("name") == "[memory]" and "Total Allocated" in args:
            device = "cuda" if args.get("Device Type") == 1 else "cpu"
            counters.append({"ph": "C", "cat": "gimbench memory", "name": f"gimbench memory allocated ({device})",
                             "pid": e.get("pid", os.getpid()), "ts": e["ts"],
                             "args": {"bytes": args["Total Allocated"]}})
    return counters


def trace_meter(kinds: list[str], folder: Path, names: list[str], device: torch.device) -> TraceMeter | None:
    """The meter of the step ``--trace`` profiles; ``None`` when the plan has no warm-up step."""
    step = traced_step(kinds)
    return None if step is None else TraceMeter(folder, names, device, step)


def with_trace(meter_for, tracer: TraceMeter | None):
    """``meter_for`` (step -> meter) with the traced step's meter replaced by ``tracer``."""
    if tracer is None:
        return meter_for
    return lambda step: tracer if step == tracer.step_index else meter_for(step)


def trace_block(tracer: TraceMeter | None) -> dict:
    """results.json's ``trace`` block of a run given ``--trace``."""
    if tracer is None:
        return {"file": None, "note": "not traced: the run has no warm-up step (--warmup-steps 0) to trace"}
    return tracer.record or {"file": None, "note": f"not traced: step {tracer.step_index} did not run in this session"}
