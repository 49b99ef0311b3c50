"""Which steps are measured how, and the per-module and per-step figures built from them.

Steps after warm-up are split so measurement never perturbs what it measures: ``memory`` steps
record the allocator and the tensor tracker (slow, never timed); ``timed`` steps run the timers, spread over
the whole run among ``plain`` steps that run nothing, so the timers' own cost can be read off as a ratio.
Memory steps cover the whole schedule: every module's work is measured, each time after that module
has trained once (so its optimizer state exists). The greedy floor is measured apart from the steps it
judges: each module trained alone on the batch of the last memory step (``measure_floor``, given at
construction; ``gimbench.profiling.floor``). With ``count_flops`` the first warm-up step runs under the FLOP
counter (``gimbench.profiling.flops``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from gimbench.device import empty_cache
from gimbench.profiling.allocator import backend_name
from gimbench.profiling.flops import COMPUTE, FlopMeter, phase_counts, rate, same_work
from gimbench.profiling.memory import MemoryMeter, StepMemory
from gimbench.profiling.meter import NULL_METER, PHASES, Meter
from gimbench.profiling.resident import resident_breakdown
from gimbench.profiling.timeline import Timeline
from gimbench.profiling.timing import TimingMeter
from gimbench.profiling.tracker import CATEGORIES


def plan(steps: int, warmup: int, timed: int, memory: int,
         trains: Callable[[int], Sequence[int]] = lambda step: (0,)) -> list[str]:
    """The kind of every step. Warm-up first; then a step is ``memory`` when every module it trains has
    trained at an earlier step (its optimizer state exists) and one of them has had fewer than
    ``memory`` memory steps; the other steps are ``plain`` but for ``timed`` of them (``spread_timed``).
    ``trains(step)`` names the modules a step trains (the default: the same work every step)."""
    kinds, seen, measured = [], set(), {}
    for step in range(steps):
        modules = tuple(trains(step))
        if step < warmup:
            kind = "warmup"
        elif seen.issuperset(modules) and any(measured.get(m, 0) < memory for m in modules):
            kind = "memory"
            for m in modules:
                measured[m] = measured.get(m, 0) + 1
        else:
            kind = "plain"
        seen.update(modules)
        kinds.append(kind)
    return spread_timed(kinds, timed)


def spread_timed(kinds: list[str], timed: int) -> list[str]:
    """``kinds`` with ``timed`` of its plain steps (at most every other one) made ``timed``, spread evenly over the
    whole run, each right after a plain one: timed and plain steps then sample the same stretches of the run
    (a machine busier later, periodic checkpoints, a schedule that trains modules in turn), so the medians of
    the two compare the timers' cost and nothing else."""
    plain = [step for step, kind in enumerate(kinds) if kind == "plain"]
    count = min(timed, len(plain) // 2)
    for i in range(count):  # the second plain step of each of ``count`` equal stretches
        kinds[plain[i * len(plain) // count + 1]] = "timed"
    return kinds


def spread(values: list[float]) -> tuple[float, float]:
    """(median, interquartile range)."""
    if len(values) < 2:
        return (values[0], 0.0) if values else (float("nan"), 0.0)
    q = statistics.quantiles(values, n=4)
    return statistics.median(values), q[2] - q[0]


def ratio_interval(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """A bootstrap interval of median(a) / median(b) - 1: the central ``level`` of that ratio over resamplings
    of both sets (a fixed seed, so a run's figures reproduce). Where it holds 0 the two medians differ by no
    more than the steps' own spread; ``None`` with fewer than 2 values in either set."""
    if len(a) < 2 or len(b) < 2:
        return None
    generator = torch.Generator().manual_seed(0)
    ratios = resampled_medians(a, generator) / resampled_medians(b, generator) - 1
    tail = (1 - level) / 2
    low, high = ratios.quantile(torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return float(low), float(high)


def resampled_medians(values: list[float], generator: torch.Generator, draws: int = 1000,
                      batch: int = 100) -> torch.Tensor:
    """The medians of ``draws`` resamplings (with replacement) of ``values``, ``batch`` resamplings at a time
    (a long run's steps times ``draws`` would not fit in memory at once)."""
    v, n = torch.tensor(values, dtype=torch.float64), len(values)
    medians = []
    for _ in range(draws // batch):
        rows = v[torch.randint(n, (batch, n), generator=generator)].sort(dim=1).values
        medians.append((rows[:, (n - 1) // 2] + rows[:, n // 2]) / 2)
    return torch.cat(medians)


@dataclass
class Profiler:
    """Hands the trainer a meter per step and turns what the meters saw into results."""

    kinds: list[str]
    network: torch.nn.Module
    optimizers: list
    device: torch.device
    measure_floor: Callable | None = None  # (x, labels) -> each module's peak trained alone; None: no floor
    distributed: bool = False  # under torchrun (on the CPU the tracker alone then measures, see allocator)
    floor_by_module: list[int | None] | None = field(default=None, init=False)  # what ``measure_floor`` measured
    floor_note: str | None = field(default=None, init=False)  # why there is no floor, where it was tried
    count_flops: bool = False  # count FLOPs on the first warm-up step this profiler hands a meter for
    reference_flops_per_s: float | None = None  # the device's matmul rate the achieved rates are a fraction of

    def __post_init__(self) -> None:
        self.timing = TimingMeter(self.device)
        self.memory = MemoryMeter(self.network, self.optimizers, self.device, distributed=self.distributed)
        self.backend = backend_name(self.device, self.distributed)
        self.flops = FlopMeter()

    def meter_for(self, step: int) -> Meter:
        kind = self.kinds[step]
        if kind == "warmup" and self.count_flops and not self.flops.counts:
            return self.flops
        return self.timing if kind == "timed" else self.memory if kind == "memory" else NULL_METER

    def after_step(self, step: int, x: torch.Tensor, labels: torch.Tensor | None) -> None:
        """After the plan's last memory step, measure each module trained alone on the same batch."""
        if self.measure_floor is not None and self.kinds[step] == "memory" and "memory" not in self.kinds[step + 1:]:
            try:
                self.floor_by_module = self.measure_floor(x, labels)
            except torch.OutOfMemoryError as e:  # a measurement beside training: it fails alone
                self.floor_by_module = None
                self.floor_note = f"not measured: out of memory training a module alone ({str(e).splitlines()[0]})"
                empty_cache(self.device)

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

    def module_flops(self, k: int) -> dict:
        """Module k's counted FLOPs (forward, loss, backward) and the rate they ran at: over the median of its
        time in those phases on the timed steps that did the counted work. ``{}`` where nothing was counted."""
        by_phase = phase_counts(self.flops.counts, k)
        if by_phase is None:
            return {}
        seconds = [sum(s.get((k, p), 0.0) for p in COMPUTE) for s in same_work(self.flops.counts, self.timing.steps)]
        return {"flops_by_phase": by_phase, **rate(sum(by_phase.values()), seconds, self.reference_flops_per_s)}

    def step_flops(self) -> dict:
        """The step's counted FLOPs (its modules' sum) and the rate over the median of all modules' compute
        phases on the timed steps that did the counted work, with ``flops_note`` saying what was measured."""
        counts = self.flops.counts
        if not counts:
            return {"flops_note": "not counted: no warm-up step to count on (--warmup-steps 0, or its one warm-up "
                                  "step traced by --trace)" if self.count_flops else None}
        steps = same_work(counts, self.timing.steps)
        seconds = [sum(v for (_, p), v in s.items() if p in COMPUTE) for s in steps]
        flops = sum(v for (_, p), v in counts.items() if p in COMPUTE)
        note = (f"counted on one warm-up step (torch.utils.flop_counter); rate over {len(steps)} timed steps "
                "doing the same work")
        return {**rate(flops, seconds, self.reference_flops_per_s), "flops_note": note}

    def module_memory(self, k: int) -> dict:
        """Module k's highest (module, phase) allocator peak over the memory steps, and what the tracker
        saw live at its own peak in that interval."""
        intervals = [(phase, i) for s in self.memory.steps for (m, phase), i in s.intervals.items() if m == k]
        if not intervals:
            return {}
        phase, top = max(intervals, key=lambda pi: pi[1].allocator_peak)
        snap = top.tracked
        memory = {"peak_bytes": top.allocator_peak, "tracked_peak_bytes": snap.live,
                  "untracked_bytes": top.allocator_peak - snap.live, "reserved_peak_bytes": top.reserved_peak,
                  "peak_phase": phase}
        memory |= {f"{c}_bytes": snap.by_category[c] for c in CATEGORIES}
        memory["own_activation_bytes"] = snap.activation_by_module.get(k, 0)
        memory["own_gradient_bytes"] = snap.gradient_by_module.get(k, 0)
        memory["phase_peak_bytes"] = {
            p: max(i.allocator_peak for s in self.memory.steps for key, i in s.intervals.items() if key == (k, p))
            for p in PHASES if any((k, p) in s.intervals for s in self.memory.steps)
        }
        memory["phase_tracked_peak_bytes"] = {
            p: max(i.tracked.live for s in self.memory.steps for key, i in s.intervals.items() if key == (k, p))
            for p in memory["phase_peak_bytes"]
        }
        if self.floor_by_module is not None and self.floor_by_module[k] is not None:
            memory["alone_peak_bytes"] = self.floor_by_module[k]
        memory |= resident_breakdown(self.network, self.optimizers[k], k)
        return {"memory": memory}

    def floor(self) -> int | None:
        """The greedy floor: the highest step peak of training one module alone (its forward, local loss
        or the gradient arriving at its output, backward and optimizer step) on the batch of the last
        memory step, resident state included; measured apart from the steps it is compared with."""
        peaks = [p for p in self.floor_by_module or () if p is not None]
        return max(peaks) if peaks else None

    def _top(self) -> StepMemory:
        """The memory step with the highest allocator peak (the first of equals): the step ``step_memory`` reports."""
        return max(self.memory.steps, key=lambda s: s.allocator_peak)

    def timeline(self) -> Timeline | None:
        """Allocated bytes over the step whose peak ``step_memory`` reports; ``None`` without one."""
        return self._top().timeline if self.memory.steps else None

    def step_memory(self) -> dict:
        """Step-level memory: the allocator's peak over the memory steps, the tracker's beside it, resident
        bytes, the floor and the ratio, and the cross-checks (peak RSS, NVML on CUDA)."""
        nvml = self.memory.nvml
        if not self.memory.steps:
            return {"memory_backend": self.backend, "nvml_used_bytes": nvml.peak_bytes, "nvml_note": nvml.note}
        top = self._top()
        floor = self.floor()
        return {
            "peak_memory_bytes": top.allocator_peak,
            "tracked_peak_bytes": top.peak.live,
            "untracked_bytes": top.allocator_peak - top.peak.live,
            "reserved_peak_bytes": max((s.reserved_peak for s in self.memory.steps if s.reserved_peak is not None),
                                       default=None),
            "peak_breakdown_bytes": dict(top.peak.by_category),
            "resident_bytes": max(s.resident for s in self.memory.steps),
            "input_bytes": top.preexisting,
            "floor_bytes": floor,
            "floor_by_module_bytes": self.floor_by_module,
            "floor_note": self.floor_note,
            "peak_over_floor": top.allocator_peak / floor if floor else None,
            "rss_peak_bytes": max((s.rss_peak or 0 for s in self.memory.steps), default=0) or None,
            "nvml_used_bytes": nvml.peak_bytes,
            "nvml_note": nvml.note,
            "memory_steps": len(self.memory.steps),
        }
