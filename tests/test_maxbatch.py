"""--find-max-batch: sizes parse, bad values are one-line errors, and the search lands between two
peaks measured by ordinary runs."""

from __future__ import annotations

import json

import pytest

from gimbench.cli import main
from gimbench.config import parse_size
from gimbench.runs.maxbatch import search

RUN = ["run", "--preset", "tiny", "--device", "cpu", "--quiet", "--no-probe", "--model", "gim", "--depth", "1",
       "--steps", "2", "--warmup-steps", "1", "--profile-steps", "0", "--memory-steps", "1"]


@pytest.mark.parametrize("text,size", [("512MiB", 512 * 2**20), ("8GiB", 8 * 2**30), ("1.5GB", 1_500_000_000),
                                       ("2 kb", 2000), ("1000", 1000), ("3mib", 3 * 2**20)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["8GX", "-1GiB", "GiB", "", "1e9", "0MiB", "1.5.2GB"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("flags,message", [
    (["--find-max-batch", "--memory-budget", "8GX"], "--memory-budget: '8GX' is not a size"),
    (["--memory-budget", "8GiB"], "go together"),
    (["--find-max-batch"], "go together"),
    (["--find-max-batch", "--memory-budget", "8GiB", "--batch-size", "4"], "exclude each other"),
    (["--find-max-batch", "--memory-budget", "1KiB"], "even batch size 1 needs"),
    (["--find-max-batch", "--memory-budget", "100TiB"], "more than this machine's"),
])
def test_bad_budget_options_are_one_line_errors(tmp_path, capsys, flags, message):
    assert main([*RUN, "--out", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # no run folder is left behind


@pytest.mark.parametrize("largest", [0, 1, 5, 8, 37])
def test_search_is_the_largest_fitting_size(largest):
    seen = []
    assert search(lambda b: seen.append(b) or b <= largest) == largest
    assert len(seen) == len(set(seen))  # no size is tried twice


def run_at(tmp_path, name: str, *flags: str) -> dict:
    assert main([*RUN, "--out", str(tmp_path), "--name", name, *flags]) == 0
    return json.loads((tmp_path / name / "results.json").read_text())


def test_budget_between_two_measured_peaks_finds_the_smaller_batch(tmp_path):
    five, six = (run_at(tmp_path, f"b{b}", "--batch-size", str(b)) for b in (5, 6))
    assert five["max_batch"] is None
    peak5, peak6 = five["step"]["peak_memory_bytes"], six["step"]["peak_memory_bytes"]
    assert peak5 < peak6
    doc = run_at(tmp_path, "search", "--find-max-batch", "--memory-budget", str((peak5 + peak6) // 2))
    found = doc["max_batch"]
    assert found["batch_size"] == 5 and doc["config"]["batch_size"] == 5  # and the run trained at it
    assert found["budget_bytes"] == (peak5 + peak6) // 2 and found["backend"] == "cpu-allocator"
    tried = {t["batch_size"]: t for t in found["tried"]}
    assert tried[5] == {"batch_size": 5, "peak_bytes": peak5, "fits": True} and found["peak_bytes"] == peak5
    assert tried[6] == {"batch_size": 6, "peak_bytes": peak6, "fits": False}
    assert all(t["fits"] == (t["peak_bytes"] <= found["budget_bytes"]) for t in found["tried"])
    assert doc["step"]["peak_memory_bytes"] == peak5
