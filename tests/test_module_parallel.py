"""Module-parallel GIM and pipelined CPC under torchrun (CPU, gloo, 2-3 processes): the same parameters as one
process, each rank holding only its own modules, one results.json with every rank's row, and the report's
ranks side by side."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from html_tables import read_html, table
from test_distributed import worker_pid

from gimbench.cli import main, make_parser
from gimbench.distributed.balance import balanced_groups
from gimbench.distributed.stages import module_groups
from gimbench.sweep.grid import configurations

TINY = ["--preset", "tiny", "--device", "cpu", "--quiet", "--no-probe", "--batch-size", "4", "--warmup-steps", "1",
        "--profile-steps", "1", "--memory-steps", "1", "--depth", "4", "--steps", "4"]


def launched(out: Path, name: str, nproc: int, *args: str) -> dict:
    """A run of ``gimbench run --nproc`` (which starts torchrun); its results.json."""
    command = [sys.executable, "-m", "gimbench", "run", *TINY, "--out", str(out), "--name", name,
               "--nproc", str(nproc), *args]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / name / "results.json").read_text())


def one_process(out: Path, name: str, *args: str) -> dict:
    assert main(["run", *TINY, "--out", str(out), "--name", name, *args]) == 0
    return json.loads((out / name / "results.json").read_text())


def parameters(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Single-process per-module GIM and CPC, module-parallel GIM cut by count with K=1 on 2 processes and K=2 on
    3 and cut by measured cost on 2, and CPC pipelined with GPipe (one micro-batch) and 1F1B (two), all from the
    same seed and data."""
    out = tmp_path_factory.mktemp("runs")
    one_process(out, "per-module", "--model", "gim")
    one_process(out, "cpc", "--model", "cpc")
    launched(out, "mp-k1", 2, "--model", "gim", "--gim-mode", "module-parallel", "--max-inflight", "1",
             "--split-ranks", "count")
    launched(out, "mp-k2", 3, "--model", "gim", "--gim-mode", "module-parallel", "--max-inflight", "2",
             "--split-ranks", "count")
    launched(out, "mp-balanced", 2, "--model", "gim", "--gim-mode", "module-parallel")
    launched(out, "gpipe", 2, "--model", "cpc", "--pipeline", "gpipe", "--micro-batches", "1")
    launched(out, "1f1b", 2, "--model", "cpc", "--pipeline", "1f1b", "--micro-batches", "2")
    return out


def test_module_groups_are_contiguous_and_even():
    assert module_groups(6, 2) == [[0, 1, 2], [3, 4, 5]]
    assert module_groups(4, 3) == [[0, 1], [2], [3]]
    assert module_groups(3, 3) == [[0], [1], [2]]


def check_ranks(doc: dict, mode: str, groups: list[list[int]]) -> None:
    """One row per rank, each holding (parameters resident in memory) and reporting only its own modules."""
    block = doc["distributed"]
    assert (block["world_size"], block["backend"], block["mode"]) == (len(groups), "gloo", mode)
    assert [r["modules"] for r in block["ranks"]] == groups
    for row, group in zip(block["ranks"], groups, strict=True):
        assert [m["index"] for m in row["module_rows"]] == group and row["samples_per_s"] > 0
        assert 0 <= row["idle_fraction"] < 1
        own = sum(m["parameters"] for m in row["module_rows"])
        assert row["step"]["peak_breakdown_bytes"]["parameter"] == 4 * own  # float32: its modules, nothing else
    # The top-level module rows are their owners': every module's loss and time are there.
    assert all(m["loss"]["last"] is not None or mode.startswith("pipeline") for m in doc["modules"])
    assert all(m["time_ms"]["total"] > 0 for m in doc["modules"])


@pytest.mark.parametrize("name,groups", [("mp-k1", [[0, 1], [2, 3]]), ("mp-k2", [[0, 1], [2], [3]]),
                                         ("mp-balanced", None)])
def test_module_parallel_trains_the_parameters_one_process_trains(runs, name, groups):
    doc, single = (json.loads((runs / n / "results.json").read_text()) for n in (name, "per-module"))
    assert doc["status"] == "complete" and single["distributed"] is None
    split = doc["distributed"]["ranks"][0]["split"]
    if groups is None:  # balanced: the cut the measured module step times call for, the same on every rank
        assert split["by"] == "balanced" and all(r["split"] == split for r in doc["distributed"]["ranks"])
        groups = balanced_groups(split["module_step_ms"], 2)
    else:
        assert split == {"by": "count", "module_step_ms": None}
    check_ranks(doc, "module-parallel", groups)
    mine, theirs = parameters(runs / name), parameters(runs / "per-module")
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert doc["final_parameter_checksum"] == single["final_parameter_checksum"]
    assert [m["loss"]["history"] for m in doc["modules"]] == [m["loss"]["history"] for m in single["modules"]]


def test_pipelined_cpc_runs_both_schedules(runs):
    gpipe, one_f_one_b, single = (json.loads((runs / n / "results.json").read_text()) for n in ("gpipe", "1f1b", "cpc"))
    for doc, mode in ((gpipe, "pipeline-gpipe"), (one_f_one_b, "pipeline-1f1b")):
        assert doc["status"] == "complete"
        check_ranks(doc, mode, [[0, 1], [2, 3]])
        assert doc["modules"][-1]["loss"]["last"] is not None
    # With one micro-batch the pipeline computes exactly what one process computes.
    mine, theirs = parameters(runs / "gpipe"), parameters(runs / "cpc")
    assert mine.keys() == theirs.keys() and all(torch.allclose(mine[k], theirs[k], atol=1e-6) for k in theirs)
    assert parameters(runs / "1f1b").keys() == theirs.keys()


def test_a_signal_to_the_last_rank_stops_every_rank_after_the_same_step(tmp_path):
    # Not quiet: the plain progress lines (every 100 steps of 1000) say when it trains.
    command = [sys.executable, "-m", "gimbench", "run", *(a for a in TINY if a != "--quiet"), "--steps", "1000",
               "--model", "gim", "--gim-mode", "module-parallel", "--nproc", "2", "--out", str(tmp_path),
               "--name", "signalled"]
    launcher = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert any(line.startswith("step 100/") for line in launcher.stdout), launcher.stderr.read()
        os.kill(worker_pid(tmp_path, 1), signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = launcher.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        launcher.kill()
    assert launcher.returncode == 128 + signal.SIGTERM and elapsed < 30 and "Traceback" not in stderr
    doc = json.loads((tmp_path / "signalled" / "results.json").read_text())
    assert doc["status"] == "interrupted" and doc["failure"]["signal"] == "SIGTERM" and doc["steps_completed"] < 1000
    steps = {len(r["module_rows"][0]["loss"]["history"]) for r in doc["distributed"]["ranks"]}
    assert steps == {doc["steps_completed"]}


def test_report_sets_the_ranks_of_both_runs_side_by_side(runs, tmp_path, capsys):
    assert main(["report", str(runs / "mp-k1"), str(runs / "1f1b"), "--out", str(tmp_path / "report")]) == 0
    assert "Ranks side by side" in capsys.readouterr().out
    tables, _ = read_html((tmp_path / "report" / "index.html").read_text())
    rows = table(tables, "Ranks side by side")
    assert [(r["mode"], r["rank"], r["modules"]) for r in rows] == [
        ("module-parallel", "0", "0-1"), ("module-parallel", "1", "2-3"),
        ("pipeline-1f1b", "0", "0-1"), ("pipeline-1f1b", "1", "2-3")]
    assert all(r["idle"].endswith("%") and float(r["samples/s"]) > 0 and float(r["peak"]) > 0 for r in rows)


def test_sweep_runs_the_locking_comparison_as_three_runs():
    args = make_parser().parse_args(["sweep", "--nproc", "2", "--model", "gim,cpc", "--gim-mode", "module-parallel",
                                     "--pipeline", "gpipe,1f1b", "--micro-batches", "2"])
    configs, _ = configurations(args, args.run_options)
    assert [c.label for c in configs] == ["gim", "cpc-gpipe", "cpc-1f1b"]
    assert all("--nproc" in c.argv for c in configs)
    assert "--micro-batches" not in configs[0].argv and "--gim-mode" not in configs[1].argv


@pytest.mark.parametrize("args,says", [
    (["--gim-mode", "module-parallel"], "--gim-mode module-parallel spreads the modules over processes"),
    (["--gim-mode", "module-parallel", "--nproc", "5"], "5 processes cannot split 4 modules"),
    (["--model", "gim", "--pipeline", "gpipe"], "--pipeline gpipe applies to --model cpc only"),
    (["--model", "cpc", "--micro-batches", "2"], "--micro-batches 2 applies to a pipelined cpc"),
    (["--model", "cpc", "--pipeline", "gpipe", "--nproc", "2", "--micro-batches", "3"], "must divide the batch"),
    (["--model", "cpc", "--pipeline", "1f1b", "--nproc", "2", "--micro-batches", "1"], "--micro-batches >= the"),
])
def test_config_errors_are_one_line(tmp_path, capsys, args, says):
    assert main(["run", *TINY, "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gimbench: error: ") and says in err
    assert not any(tmp_path.iterdir())
