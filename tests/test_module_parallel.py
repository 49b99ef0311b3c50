"""Module-parallel GIM and pipelined CPC under torchrun (CPU, gloo, 2-3 processes): the same parameters as one
process, each rank holding only its own modules, one results.json with every rank's row, and the report's
ranks side by side."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from html_tables import read_html, table
from rich.console import Console
from test_distributed import worker_pid

from gimbench.cli import main, make_parser
from gimbench.distributed.links import NOT_SPLIT, timeline
from gimbench.models.cuts import balanced_groups, even_groups
from gimbench.profiling.busy import BusyClock
from gimbench.report.collect import result_from_doc
from gimbench.report.terminal import run_summary
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
    assert even_groups(6, 2) == [[0, 1, 2], [3, 4, 5]]
    assert even_groups(4, 3) == [[0, 1], [2], [3]]
    assert even_groups(3, 3) == [[0], [1], [2]]


def test_a_steps_transfer_is_its_messages_times_the_ping_capped_by_its_time_in_sends_and_receives():
    clock = BusyClock(torch.device("cpu"))
    for busy, transfer, messages, aside in ((4.0, 0.0, 0, 0.0), (0.5, 0.3, 2, 0.2), (0.6, 0.05, 2, 0.0)):
        clock.begin_step()
        clock.steps[-1], clock.transfers[-1] = busy, transfer
        clock.set_aside(aside)
        for _ in range(messages):
            clock.message(1, 1024)
    wall = [5.0, 1.2, 1.0]  # step 0 is left out (skip 1); step 1 spent 0.2 s pinging
    assert timeline(clock, wall, 1) == {"idle_fraction": pytest.approx(0.45), **NOT_SPLIT}  # transfers not timed
    clock.transfers_measured = True
    assert timeline(clock, wall, 1)["comm_fraction"] == pytest.approx(0.175)  # no ping yet: not split
    assert timeline(clock, wall, 1)["transfer_fraction"] is None
    clock.links[1] = {"peer": 1, "bytes": 1024, "one_way_ms": 50.0, "round_trips": 5}
    shares = timeline(clock, wall, 1)
    # step 1: 2 x 50 ms of transfer within its 0.3 s in calls; step 2: capped at its 0.05 s; over 2.0 s of steps
    assert shares["transfer_fraction"] == pytest.approx(0.075) and shares["wait_fraction"] == pytest.approx(0.1)
    assert shares["links"] == [clock.links[1] | {"messages_per_step": 2.0}]


def check_ranks(doc: dict, mode: str, groups: list[list[int]]) -> None:
    """One row per rank, each holding (parameters resident in memory) and reporting only its own modules."""
    block = doc["distributed"]
    assert (block["world_size"], block["backend"], block["mode"]) == (len(groups), "gloo", mode)
    assert [r["modules"] for r in block["ranks"]] == groups
    for row, group in zip(block["ranks"], groups, strict=True):
        assert [m["index"] for m in row["module_rows"]] == group and row["samples_per_s"] > 0
        assert 0 <= row["idle_fraction"] < 1
        check_transfers(row, len(groups))
        own = sum(m["parameters"] for m in row["module_rows"])
        assert row["step"]["peak_breakdown_bytes"]["parameter"] == 4 * own  # float32: its modules, nothing else
    # The top-level module rows are their owners': every module's loss and time are there.
    assert all(m["loss"]["last"] is not None or mode.startswith("pipeline") for m in doc["modules"])
    assert all(m["time_ms"]["total"] > 0 for m in doc["modules"])


def check_transfers(row: dict, size: int) -> None:
    """The rank's time in sends and receives lies within its idle time and splits into the estimated transfer
    and waiting; it pinged each neighbour once, and both ends of a link report the lead's figure."""
    comm, transfer, wait = row["comm_fraction"], row["transfer_fraction"], row["wait_fraction"]
    assert 0 <= transfer <= comm <= row["idle_fraction"] + 1e-9 and transfer + wait == pytest.approx(comm)
    rank = row["rank"]
    assert [link["peer"] for link in row["links"]] == [p for p in (rank - 1, rank + 1) if 0 <= p < size]
    assert all(link["one_way_ms"] > 0 and link["round_trips"] == 5 for link in row["links"])


def link(doc: dict, rank: int, peer: int) -> dict:
    return next(x for x in doc["distributed"]["ranks"][rank]["links"] if x["peer"] == peer)


@pytest.mark.slow
def test_each_link_is_pinged_with_the_size_of_what_crosses_it(runs):
    """Each rank counts the messages it exchanges per step and pings at their size: module-parallel sends one
    batch's activation (plus two numbers) a step; a pipeline sends each micro-batch's activation forward and
    receives its gradient back, of the same size: half of the whole batch's with two micro-batches."""
    mp, mp3, gpipe, one_f_one_b = (json.loads((runs / n / "results.json").read_text())
                                   for n in ("mp-k1", "mp-k2", "gpipe", "1f1b"))
    for doc in (mp, mp3, gpipe, one_f_one_b):
        for rank in range(doc["distributed"]["world_size"] - 1):
            assert link(doc, rank, rank + 1) == link(doc, rank + 1, rank) | {"peer": rank + 1}
    assert [x["messages_per_step"] for x in mp["distributed"]["ranks"][0]["links"]] == [1]
    assert link(gpipe, 0, 1)["messages_per_step"] == 2 and link(one_f_one_b, 0, 1)["messages_per_step"] == 4
    batch_bytes = mp["distributed"]["ranks"][0]["links"][0]["bytes"] - 4 * 2  # module 1's output, batch 4
    assert link(gpipe, 0, 1)["bytes"] == batch_bytes == 2 * link(one_f_one_b, 0, 1)["bytes"]


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_report_sets_the_ranks_of_both_runs_side_by_side(runs, tmp_path, capsys):
    assert main(["report", str(runs / "mp-k1"), str(runs / "1f1b"), "--out", str(tmp_path / "report")]) == 0
    assert "Ranks side by side" in capsys.readouterr().out
    tables, _ = read_html((tmp_path / "report" / "index.html").read_text())
    rows = table(tables, "Ranks side by side")
    assert [(r["mode"], r["rank"], r["modules"]) for r in rows] == [
        ("module-parallel", "0", "0-1"), ("module-parallel", "1", "2-3"),
        ("pipeline-1f1b", "0", "0-1"), ("pipeline-1f1b", "1", "2-3")]
    assert all(r["idle"].endswith("%") and float(r["samples/s"]) > 0 and float(r["peak"]) > 0 for r in rows)
    docs = [json.loads((runs / n / "results.json").read_text()) for n in ("mp-k1", "1f1b")]
    for r, rank in zip(rows, [rank for doc in docs for rank in doc["distributed"]["ranks"]], strict=True):
        for column, share in (("xfer", rank["transfer_fraction"]), ("wait", rank["wait_fraction"])):
            assert float(r[column].rstrip("%")) == pytest.approx(100 * share, abs=0.051 if share < 0.1 else 0.51)
        peer, ms = r["ping ms"].split(": ")
        assert int(peer) == 1 - int(r["rank"]) and float(ms) == pytest.approx(rank["links"][0]["one_way_ms"], rel=0.01)
    assert '<img alt="per-rank step: compute, transfer and waiting"' in (tmp_path / "report" / "index.html").read_text()


@pytest.mark.slow
def test_a_distributed_summary_fits_80_columns(runs):
    doc = json.loads((runs / "mp-k2" / "results.json").read_text())
    console = Console(width=80, file=io.StringIO(), record=True)
    console.print(run_summary(result_from_doc(doc, runs / "mp-k2")))
    text = console.export_text()
    assert "…" not in text and max(map(len, text.splitlines())) <= 80
    assert "xfer" in text and "wait" in text and re.search(r"│ +0: [\d.e+-]+ 2: [\d.e+-]+ +│", text)  # rank 1's links


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
