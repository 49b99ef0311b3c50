"""Memory over one step: allocated bytes against time, and when each (module, phase) ran.

The memory meter keeps one ``Timeline`` per memory step, from what its allocator watch already recorded
(nothing more is measured): on the CPU every allocation and free the allocator reported, on CUDA the
allocated bytes at every interval boundary and, between two boundaries, the peak counter's reading (its
moment unknown: it is placed halfway). Levels are absolute, as the step's peak is: what was live before the
step (resident state and input) is added to the watch's levels, so the series' maximum is the step's
``allocator_peak`` to the byte.

A step at the paper preset makes ~10^5 allocator events; the series is cut to ``POINTS`` by keeping, in
each of ``POINTS // 2`` runs of consecutive events, the lowest and the highest level: the envelope of the
curve, its maximum exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gimbench.profiling.meter import Key

POINTS = 5000


@dataclass
class Span:
    """One (module, phase) from its first slice's start to its last consecutive slice's end, in ns from the
    step's start (a single backward through several modules comes in slices; see ``meter``)."""

    module: int
    phase: str
    start_ns: int
    end_ns: int


@dataclass
class Timeline:
    """One memory step: ``levels[i]`` bytes allocated at ``times_ns[i]`` (ns from the step's start)."""

    times_ns: list[int]
    levels: list[int]
    spans: list[Span]
    resident: int  # bytes of parameters, gradients and optimizer state live when the step began
    events: int  # points before the series was cut to ``POINTS``
    source: str  # what the points are: allocator events, or readings at the interval boundaries
    duration_ns: int  # from the step's first mark to its last

    @property
    def peak(self) -> int:
        return max(self.levels)

    @property
    def peak_ns(self) -> int:
        """When the level first reached the peak."""
        return self.times_ns[self.levels.index(self.peak)]

    def to_json(self) -> dict:
        """Plain lists and numbers (a checkpoint holds it)."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Timeline:
        return cls(**{**doc, "spans": [Span(**s) for s in doc["spans"]]})


def spans(intervals: list[tuple[Key, int, int]], start_ns: int) -> list[Span]:
    """``(key, start, end)`` intervals in time order as spans from ``start_ns``; consecutive slices of one key
    become one span."""
    merged: list[Span] = []
    for (module, phase), start, end in intervals:
        if merged and (merged[-1].module, merged[-1].phase) == (module, phase):
            merged[-1].end_ns = end - start_ns
        else:
            merged.append(Span(module, phase, start - start_ns, end - start_ns))
    return merged


def envelope(times: list[int], levels: list[int], limit: int = POINTS) -> tuple[list[int], list[int]]:
    """At most ``limit`` points of the series: the lowest and highest point of each run of consecutive
    points, in time order (the series itself when it is short enough)."""
    if len(levels) <= limit:
        return list(times), list(levels)
    width = -(-len(levels) // (limit // 2))
    keep: list[int] = []
    for begin in range(0, len(levels), width):
        run = range(begin, min(begin + width, len(levels)))
        low, high = min(run, key=levels.__getitem__), max(run, key=levels.__getitem__)
        keep += sorted({low, high})
    return [times[i] for i in keep], [levels[i] for i in keep]


def timeline(series: list[tuple[int, int]], intervals: list[tuple[Key, int, int]], offset: int, resident: int,
             source: str, end_ns: int) -> Timeline:
    """The step's timeline from its watch's ``(ns, level)`` series (the first point at the step's start),
    the meter's intervals and ``offset``, the bytes to add to the watch's levels (0 when they are absolute)."""
    start = series[0][0]
    times, levels = envelope([t - start for t, _ in series], [offset + level for _, level in series])
    return Timeline(times, levels, spans(intervals, start), resident, len(series), source, end_ns - start)
