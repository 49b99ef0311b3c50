"""The profiler's raw measurements as plain data, so a resumed run reports over every measured step.

Timing steps are ``{(module, phase): seconds}``; memory steps are ``StepMemory`` records; the counted FLOPs are
``{(module, phase): flops}``. All become
lists and dicts of numbers and strings (loadable with ``torch.load(..., weights_only=True)``) and back.
"""

from __future__ import annotations

from dataclasses import asdict

from gimbench.profiling.memory import Interval, StepMemory
from gimbench.profiling.profile import Profiler
from gimbench.profiling.timeline import Timeline
from gimbench.profiling.tracker import Snapshot


def measurements(profiler: Profiler) -> dict:
    """Every timed and memory-tracked step the profiler has seen so far."""
    timing = [[[module, phase, seconds] for (module, phase), seconds in step.items()] for step in profiler.timing.steps]
    memory = [asdict(step) | {"intervals": [[m, p, asdict(i)] for (m, p), i in step.intervals.items()]}
              for step in profiler.memory.steps]
    flops = [[module, phase, n] for (module, phase), n in profiler.flops.counts.items()]
    return {"timing": timing, "memory": memory, "floor_by_module": profiler.floor_by_module, "flops": flops}


def _snapshot(d: dict) -> Snapshot:
    return Snapshot(d["live"], dict(d["by_category"]), dict(d["activation_by_module"]), dict(d["gradient_by_module"]))


def _step_memory(d: dict) -> StepMemory:
    intervals = {(m, p): Interval(_snapshot(i["tracked"]), i["allocator_peak"], i["reserved_peak"])
                 for m, p, i in d["intervals"]}
    timeline = Timeline.from_json(d["timeline"]) if d.get("timeline") else None  # none before issue #27
    return StepMemory(d["resident"], _snapshot(d["peak"]), d["allocator_peak"], d["rss_peak"], d["reserved_peak"],
                      intervals, d.get("preexisting", 0), timeline)


def restore(profiler: Profiler, saved: dict) -> None:
    """Put measurements from earlier sessions in front of this session's. Memory steps without an allocator
    peak (checkpoints written when the CPU backend was the tensor tracker alone) are left out: their
    figures measured something else."""
    profiler.timing.steps[:0] = [{(m, p): s for m, p, s in step} for step in saved["timing"]]
    steps = [_step_memory(step) for step in saved["memory"]]
    profiler.memory.steps[:0] = [s for s in steps if s.allocator_peak is not None]
    floor = saved.get("floor_by_module", saved.get("isolated"))  # "isolated": checkpoints written before #24
    if floor is not None and profiler.floor_by_module is None:
        profiler.floor_by_module = list(floor)
    if saved.get("flops") and not profiler.flops.counts:  # counted in an earlier session: not counted again
        profiler.flops.counts = {(m, p): n for m, p, n in saved["flops"]}
