"""Runs under torchrun (CPU, gloo, 2 processes): data parallel equals one process, one results.json with
every rank's row, a killed rank ends the run with a clear error, and configuration mistakes stay one line."""

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

from gimbench.cli import main
from gimbench.config import ConfigError, RunConfig
from gimbench.runs.build import build
from gimbench.runs.run import resolve_config, run

TINY = ["--preset", "tiny", "--device", "cpu", "--quiet", "--no-probe", "--batch-size", "4", "--warmup-steps", "1",
        "--profile-steps", "1", "--memory-steps", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
GIMBENCH = [sys.executable, "-m", "gimbench"]


def two_processes(start: list[str], out: Path, *args: str) -> dict:
    """A run on two processes started by ``start`` (the launcher or torchrun itself); its results.json."""
    done = subprocess.run([*start, "run", *TINY, "--out", str(out), "--name", "two", *args], env=ENV,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [p.relative_to(out) for p in out.rglob("results.json")] == [Path("two/results.json")]
    return json.loads((out / "two" / "results.json").read_text())


def parameters(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.slow
@pytest.mark.parametrize("model,start", [("gim", GIMBENCH), ("cpc", [*TORCHRUN, "-m", "gimbench"])],
                         ids=["gim-launcher", "cpc-torchrun"])
def test_data_parallel_matches_one_process(tmp_path, model, start):
    args = ("--model", model, "--depth", "3", "--steps", "5")
    nproc = ("--nproc", "2") if start == GIMBENCH else ()  # torchrun's parser would take --nproc for its own
    doc = two_processes(start, tmp_path / "two-processes", *args, *nproc)
    assert main(["run", *TINY, "--out", str(tmp_path), "--name", "one", *args]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert one["distributed"] is None and doc["status"] == "complete" and doc["config"]["nproc"] == 2

    block = doc["distributed"]
    assert (block["world_size"], block["backend"], block["mode"]) == (2, "gloo", "data-parallel")
    assert [r["rank"] for r in block["ranks"]] == [0, 1]
    for row in block["ranks"]:
        assert row["device"] == "cpu" and row["modules"] == [0, 1, 2] and row["idle_fraction"] is None
        assert row["comm_fraction"] is None and row["links"] is None  # DDP's all-reduces are not timed apart
        assert set(row["step"]) == set(doc["step"]) and row["step"]["peak_memory_bytes"] > 0
        assert row["samples_per_s"] > 0 and [m["index"] for m in row["module_rows"]] == [0, 1, 2]
        assert all(m["memory"]["peak_bytes"] > 0 and m["time_ms"]["total"] > 0 for m in row["module_rows"])
    # The ranks' losses are the global batch's: those one process computes.
    for mine, theirs in zip(doc["modules"], one["modules"], strict=True):
        assert mine["loss"]["last"] == pytest.approx(theirs["loss"]["last"], abs=1e-5)

    split, whole = parameters(tmp_path / "two-processes" / "two"), parameters(tmp_path / "one")
    assert split.keys() == whole.keys()
    trained = [k for k in whole if whole[k].is_floating_point()]
    assert trained and all(torch.allclose(split[k], whole[k], atol=1e-5) for k in trained)
    initial = build(resolve_config(RunConfig(model=model, depth=3, preset="tiny", device="cpu", batch_size=4)))
    start = initial.network.state_dict()
    assert sum(not torch.allclose(whole[k], start[k], atol=1e-4) for k in trained) > len(trained) // 2  # trained


def worker_pid(out: Path, rank: int) -> int | None:
    """The pid of the run's worker of ``rank`` (its command line names ``out``; torchrun sets ``RANK``)."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in cmdline and f"RANK={rank}".encode() in environ and b"-u" in cmdline:
            return int(proc.name)
    return None


def signal_a_run(out: Path, number: signal.Signals, launcher_too: bool = False) -> tuple[int, str, float, dict]:
    """Send ``number`` to rank 1 of a long 2-process run once it trains (to the launcher instead with
    ``launcher_too``): the launcher's exit status, its stderr, the seconds it took to exit after the signal,
    and results.json."""
    command = [*GIMBENCH, "run", *TINY, "--model", "gim", "--depth", "2", "--steps", "100000", "--nproc", "2",
               "--checkpoint-every", "1", "--out", str(out), "--name", "signalled"]
    launcher = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "signalled" / "checkpoint.pt").exists():  # rank 0 is training
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.stderr.read()
            time.sleep(0.2)
        pid = launcher.pid if launcher_too else worker_pid(out, 1)
        assert pid is not None
        os.kill(pid, number)
        sent = time.monotonic()
        _, stderr = launcher.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    finally:
        launcher.kill()
    assert "Traceback" not in stderr
    return launcher.returncode, stderr, elapsed, json.loads((out / "signalled" / "results.json").read_text())


@pytest.mark.slow
def test_killing_a_rank_ends_the_run_with_a_clear_error(tmp_path):
    code, stderr, elapsed, doc = signal_a_run(tmp_path, signal.SIGKILL)
    assert code == 128 + signal.SIGKILL and elapsed < 30, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("gimbench: failed: rank 1 (pid ") and "was killed by SIGKILL" in last
    assert doc["status"] == "failed" and doc["failure"]["reason"] == "peer-lost"
    assert "lost contact" in doc["failure"]["message"] and len(doc["distributed"]["ranks"]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("number,to_launcher", [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM-to-rank-1", "SIGINT-to-the-launcher"])
def test_a_signal_stops_every_rank_after_the_same_step(tmp_path, number, to_launcher):
    code, stderr, elapsed, doc = signal_a_run(tmp_path, number, to_launcher)
    assert code == 128 + number and elapsed < 30, stderr[-3000:]
    assert f"gimbench: interrupted by {number.name} after step" in stderr and "gimbench: failed" not in stderr
    assert doc["status"] == "interrupted" and [r["rank"] for r in doc["distributed"]["ranks"]] == [0, 1]
    steps = {len(r["module_rows"][0]["loss"]["history"]) for r in doc["distributed"]["ranks"]}
    assert steps == {doc["steps_completed"]}


@pytest.mark.parametrize("args,says", [
    (["--batch-size", "5"], "--batch-size 5 is the global batch of the 2 processes"),
    (["--find-max-batch", "--memory-budget", "1GiB"], "--find-max-batch searches with one process"),
    (["--resume", "somewhere"], "cannot be resumed"),
    (["--depth", "0"], "--depth must be between"),
])
def test_config_errors_under_nproc_are_one_line(tmp_path, capsys, args, says):
    assert main(["run", "--preset", "tiny", "--device", "cpu", "--out", str(tmp_path), "--nproc", "2", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gimbench: error: ") and says in err
    assert not any(tmp_path.iterdir())


def test_an_existing_run_folder_is_refused_before_launching(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main(["run", *TINY, "--out", str(tmp_path), "--name", "taken", "--nproc", "2"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_the_python_api_runs_one_process():
    with pytest.raises(ConfigError, match="--nproc 2: start the run with"):
        run(RunConfig(preset="tiny", device="cpu", nproc=2, batch_size=4))
