"""How a report groups runs: by setting (everything but the method), repeats (seeds) combined, and memory
series that ignore the step count; the verdict's ratios and sentence come from those groups."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from gimbench.config import RunConfig
from gimbench.report.collect import Entry
from gimbench.report.groups import Spread, groups, series
from gimbench.report.plots import colour, pareto, rank_timeline
from gimbench.report.verdict import sentence, verdict_table

MIB = 2**20


def entry(model: str = "gim", peak: float = 10, ms: float = 100, **config) -> Entry:
    """A completed run as a report reads it, with only the figures the grouping looks at."""
    cfg = RunConfig().to_dict() | {"model": model, "depth": 2, "steps": 4, "batch_size": 4} | config
    modules = [{"index": 0, "name": "conv1", "memory": {"peak_bytes": int(peak * MIB), "peak_phase": "backward"}}]
    step = {"peak_memory_bytes": int(peak * MIB), "floor_bytes": int(peak * MIB / 2), "time_ms": ms,
            "samples_per_second": 4000 / ms}
    doc = {"status": "complete", "config": cfg, "step": step, "modules": modules, "memory_backend": "cpu-allocator"}
    return Entry(Path(f"/runs/{model}-{config}"), doc)


def test_runs_that_differ_only_in_seed_are_one_cell_with_their_spread():
    found = groups([entry("cpc", 12, seed=0), entry("cpc", 14, seed=1), entry(peak=9, seed=0),
                    entry(peak=11, seed=1)])
    assert len(found) == 1 and [c.method for c in found[0].cells] == ["cpc", "gim per-module"]
    spread = found[0].cells[0].spread(lambda d: d["step"]["peak_memory_bytes"] / MIB)
    assert (spread.mean, spread.low, spread.high, spread.n, spread.half_width) == (13, 12, 14, 2, None)
    assert spread.text() == "13.0 (12.0-14.0)"


def test_a_95_percent_interval_from_three_repeats():
    spread = Spread.of([1.0, 2.0, 3.0])
    assert spread.half_width == pytest.approx(4.303 * 1.0 / 3**0.5, rel=1e-3)
    assert spread.text() == "2.0 ±2.5 (1.0-3.0)" and Spread.of([None]) is None


def test_settings_split_on_everything_but_the_method_and_seed():
    found = groups([entry("cpc", depth=2), entry(depth=2), entry("cpc", depth=4), entry(depth=4, batch_size=8)])
    assert [g.name for g in found] == ["batch size 4, depth 2", "batch size 4, depth 4", "batch size 8, depth 4"]


def test_runs_that_differ_only_in_step_count_share_a_memory_series():
    lines = series([entry(steps=4, depth=2), entry(steps=40, depth=4), entry("cpc", steps=4, depth=2)], "depth")
    assert set(lines) == {"gim per-module", "cpc"} and list(lines["gim per-module"]) == [2, 4]


def test_verdict_ratios_against_cpc_and_the_sentence():
    found = groups([entry("cpc", 12.6, 91), entry(peak=13.0, ms=162)])[0]
    rows = {r[0]: r for r in zip(*(list(c.cells) for c in verdict_table(found).columns), strict=True)}
    assert rows["gim per-module"][3] == "1.03x" and rows["gim per-module"][7] == "1.78x"
    assert "no method saves memory against cpc" in sentence(found)
    better = groups([entry("cpc", 20, 91), entry(peak=10, ms=162)])[0]
    assert "gim per-module needs least memory: 10.0 MiB, 50% less than cpc" in sentence(better)
    assert "module 0 conv1 (backward)" in sentence(better)


def test_colours_are_fixed_per_method_and_the_pareto_front():
    assert colour("cpc") == colour("cpc gpipe M=4") == "tab:blue" and colour("gim summed") == "tab:green"
    assert colour("some new method") == colour("some new method")
    assert pareto([(10, 50), (5, 40), (8, 60), (12, 55)]) == [(5, 40), (8, 60)]


def test_rank_timeline_of_a_distributed_run():
    run = entry()
    assert rank_timeline([run], ["gim"]) is None
    run.doc["distributed"] = {"mode": "module-parallel", "ranks": [
        {"rank": 0, "step": {"time_ms": 10.0}, "idle_fraction": 0.25},
        {"rank": 1, "step": {"time_ms": 12.0}, "idle_fraction": None}]}
    assert rank_timeline([run], ["gim"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_rank_timeline_draws_compute_transfer_waiting_and_the_rest_to_scale():
    run = entry()
    run.doc["distributed"] = {"mode": "pipeline-gpipe", "ranks": [
        {"rank": 0, "step": {"time_ms": 10.0}, "idle_fraction": 0.5, "comm_fraction": 0.4, "transfer_fraction": 0.1,
         "wait_fraction": 0.3},
        {"rank": 1, "step": {"time_ms": 12.0}, "idle_fraction": None}]}
    pixels = matplotlib.image.imread(io.BytesIO(rank_timeline([run], ["cpc"])), format="png")[..., :3]
    shades = {name: np.array(matplotlib.colors.to_rgb(c)) for name, c in
              (("compute", "tab:blue"), ("transfer", "tab:orange"), ("wait", "tab:gray"), ("other", "lightgray"))}

    near = {name: np.abs(pixels - shade).max(axis=-1) < 0.05 for name, shade in shades.items()}
    y = int(np.argmax(near["compute"].sum(axis=1)))  # the row through rank 0's bar
    runs, x = [], int(np.argmax(near["compute"][y]))
    for name in shades:  # the bar's parts follow each other from its left end
        while not near[name][y, x]:
            x += 1  # an anti-aliased pixel between two parts
        start = x
        while near[name][y, x]:
            x += 1
        runs.append(x - start)
    unit = runs[0] / 5  # compute: 5 ms of the 10 ms step
    assert runs[1:] == pytest.approx([1 * unit, 3 * unit, 1 * unit], abs=3)  # transfer 1, waiting 3, the rest 1
