"""Contiguous cuts of an ordered list of layers (or modules) into groups: by count, or with the largest group's
cost as small as contiguous cuts allow.

``--modules K`` cuts the layers ``--depth`` builds into K gradient-isolated modules (``--split even`` or
``balanced``), and module-parallel GIM cuts the modules into one contiguous group per rank
(``--split-ranks``); both use ``min_max_groups``.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate


def even_groups(n: int, groups: int) -> list[list[int]]:
    """Indices 0..n-1 in ``groups`` contiguous groups whose sizes differ by at most one (the first ones larger)."""
    if not 1 <= groups <= n:
        raise ValueError(f"cannot cut {n} layers into {groups} non-empty groups")
    size, extra = divmod(n, groups)
    ends = list(accumulate(size + (g < extra) for g in range(groups)))
    return [list(range(end - size - (g < extra), end)) for g, end in enumerate(ends)]


def min_max_groups(n: int, groups: int, cost: Callable[[int, int], float]) -> list[list[int]]:
    """Indices 0..n-1 in ``groups`` contiguous, non-empty groups whose largest ``cost(first, end)`` (of the group
    ``first..end-1``) is the smallest possible: dynamic programming over the last cut; ties go to the earliest
    cut."""
    if not 1 <= groups <= n:
        raise ValueError(f"cannot cut {n} layers into {groups} non-empty groups")
    # best[r][i]: (largest group cost, last cut) of the first i indices in r groups.
    best = [[(float("inf"), 0)] * (n + 1) for _ in range(groups + 1)]
    best[0][0] = (0.0, 0)
    for r in range(1, groups + 1):
        for i in range(r, n + 1):
            best[r][i] = min((max(best[r - 1][j][0], cost(j, i)), j) for j in range(r - 1, i))
    ends, i = [], n
    for r in range(groups, 0, -1):
        ends.append(i)
        i = best[r][i][1]
    starts = [0, *reversed(ends[1:])]
    return [list(range(s, e)) for s, e in zip(starts, reversed(ends), strict=True)]


def balanced_groups(costs: list[float], groups: int) -> list[list[int]]:
    """``min_max_groups`` where a group costs the sum of its members' ``costs``."""
    prefix = [0.0, *accumulate(costs)]
    return min_max_groups(len(costs), groups, lambda first, end: prefix[end] - prefix[first])
