"""Which steps are measured how, and the per-module and per-step figures built from them.

Steps after warm-up are split so measurement never perturbs what it measures: ``memory`` steps
run the tensor tracker (slow, never timed); ``timed`` steps run the timers and alternate with
``plain`` steps that run nothing, so the timers' own cost can be read off as a ratio.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from gimbench.profiling.memory import MemoryMeter
from gimbench.profiling.meter import NULL_METER, PHASES, Meter
from gimbench.profiling.system import nvml_used_bytes
from gimbench.profiling.timing import TimingMeter
from gimbench.profiling.tracker import CATEGORIES, Snapshot


def plan(steps: int, warmup: int, timed: int, memory: int) -> list[str]:
    """The kind of every step: warm-up first, then memory-tracked, then plain/timed alternating."""
    kinds = ["warmup"] * min(warmup, steps)
    kinds += ["memory"] * min(memory, steps - len(kinds))
    n_timed = 0
    for i in range(steps - len(kinds)):
        is_timed = i % 2 == 1 and n_timed < timed
        n_timed += is_timed
        kinds.append("timed" if is_timed else "plain")
    return kinds


def spread(values: list[float]) -> tuple[float, float]:
    """(median, interquartile range)."""
    if len(values) < 2:
        return (values[0], 0.0) if values else (float("nan"), 0.0)
    q = statistics.quantiles(values, n=4)
    return statistics.median(values), q[2] - q[0]


@dataclass
class Profiler:
    """Hands the trainer a meter per step and turns what the meters saw into results."""

    kinds: list[str]
    network: torch.nn.Module
    optimizers: list
    device: torch.device

    def __post_init__(self) -> None:
        self.timing = TimingMeter(self.device)
        self.memory = MemoryMeter(self.network, self.optimizers, self.device)
        self.backend = "cuda-allocator" if self.device.type == "cuda" else "cpu-tensor-tracker"

    def meter_for(self, step: int) -> Meter:
        kind = self.kinds[step]
        return self.timing if kind == "timed" else self.memory if kind == "memory" else NULL_METER

    def module_time(self, k: int) -> dict:
        """Median ms per phase over the timed steps that ran module k, with spreads."""
        steps = [s for s in self.timing.steps if any(key[0] == k for key in s)]
        if not steps:
            return {}
        times, iqr = {}, {}
        for phase in PHASES:
            times[phase], iqr[phase] = (1e3 * v for v in spread([s.get((k, phase), 0.0) for s in steps]))
        times["total"], iqr["total"] = (1e3 * v for v in spread([sum(s.get((k, p), 0.0) for p in PHASES)
                                                                 for s in steps]))
        return {"time_ms": times, "time_ms_iqr": iqr, "timed_steps": len(steps)}

    def module_memory(self, k: int) -> dict:
        """Module k's highest (module, phase) peak over the memory steps, and what was live then."""
        intervals = [(phase, i) for s in self.memory.steps for (m, phase), i in s.intervals.items() if m == k]
        if not intervals:
            return {}
        phase, top = max(intervals, key=lambda pi: pi[1].tracked.live)
        snap = top.tracked
        memory = {"peak_bytes": top.allocator_peak if self.device.type == "cuda" else snap.live,
                  "tracked_peak_bytes": snap.live, "reserved_peak_bytes": top.reserved_peak, "peak_phase": phase}
        memory |= {f"{c}_bytes": snap.by_category[c] for c in CATEGORIES}
        memory["own_activation_bytes"] = snap.activation_by_module.get(k, 0)
        memory["own_gradient_bytes"] = snap.gradient_by_module.get(k, 0)
        memory["phase_peak_bytes"] = {
            p: max(i.tracked.live for s in self.memory.steps for (m, q), i in s.intervals.items() if (m, q) == (k, p))
            for p in PHASES if any((k, p) in s.intervals for s in self.memory.steps)
        }
        return {"memory": memory}

    def floor(self) -> int | None:
        """Resident parameters, gradients and optimizer state, plus the largest single module's own
        gradients, activations and temporaries at its peak: what a greedy step cannot go below."""
        if not self.memory.steps:
            return None
        step = self.memory.steps[-1]
        resident = step.resident
        own = []
        for k in range(len(self.network)):
            snaps = [i.tracked for (m, _), i in step.intervals.items() if m == k]
            if snaps:
                s = max(snaps, key=lambda snap: snap.live)
                own.append(s.gradient_by_module.get(k, 0) + s.activation_by_module.get(k, 0)
                           + s.by_category["temporary"])
        return resident + max(own, default=0)

    def step_memory(self) -> dict:
        """Step-level memory: peak, resident before the step, floor and the ratio, cross-checks."""
        nvml, nvml_note = nvml_used_bytes(self.device)
        if not self.memory.steps:
            return {"memory_backend": self.backend, "nvml_used_bytes": nvml, "nvml_note": nvml_note}
        peak: Snapshot = max((s.peak for s in self.memory.steps), key=lambda snap: snap.live)
        last = self.memory.steps[-1]
        floor = self.floor()
        return {
            "peak_memory_bytes": last.allocator_peak if self.device.type == "cuda" else peak.live,
            "tracked_peak_bytes": peak.live,
            "reserved_peak_bytes": last.reserved_peak,
            "peak_breakdown_bytes": dict(peak.by_category),
            "resident_bytes": last.resident,
            "floor_bytes": floor,
            "peak_over_floor": peak.live / floor if floor else None,
            "rss_peak_bytes": max((s.rss_peak or 0 for s in self.memory.steps), default=0) or None,
            "nvml_used_bytes": nvml,
            "nvml_note": nvml_note,
            "memory_steps": len(self.memory.steps),
        }
