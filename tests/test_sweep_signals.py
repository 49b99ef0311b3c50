"""A sweep stopped by real signals: SIGINT to its process group (a terminal's Ctrl-C), SIGTERM to it alone,
SIGKILL; each run it started ends complete or interrupted with a checkpoint, and ``sweep --resume`` ends it."""

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

from gimbench.runs.folder import LOCK, RunLock

pytestmark = pytest.mark.slow  # real sweeps in subprocesses, stopped by signals

SWEEP = [sys.executable, "-m", "gimbench", "sweep", "--model", "gim", "--depth", "1,2", "--preset", "tiny",
         "--device", "cpu", "--steps", "30", "--batch-size", "16", "--warmup-steps", "1", "--profile-steps", "1",
         "--memory-steps", "0", "--checkpoint-every", "5", "--no-probe"]
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def start(folder: Path) -> subprocess.Popen:
    """The sweep in a process group (and session) of its own, as a shell starts a command."""
    return subprocess.Popen([*SWEEP, "--out", str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, start_new_session=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def sweep_doc(folder: Path) -> dict:
    return json.loads((folder / "sweep.json").read_text())


def results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def no_leftovers(folder: Path) -> None:
    assert not [p for p in folder.rglob(".*") if p.name.endswith(".tmp") or p.name == LOCK]


def stopped_first_run(folder: Path, signal_name: str) -> dict:
    """Checks shared by every stop: the first run interrupted with a checkpoint and its resume command, the
    second never started, sweep.json ``interrupted``; returns the first run's record."""
    doc = sweep_doc(folder)
    assert doc["status"] == "interrupted" and doc["signal"] == signal_name and doc["pid"] > 0
    assert doc["resume_command"] == f"gimbench sweep --resume {folder.absolute()}"
    [record] = doc["runs"]
    run = folder / record["folder"]
    assert record["status"] == "interrupted" and record["exit_code"] == 128 + signal.Signals[signal_name]
    assert record["resume_command"] == f"gimbench run --resume {run.absolute()}"
    assert results(run)["status"] == "interrupted" and results(run)["failure"]["signal"] == signal_name
    assert record["steps_completed"] == results(run)["steps_completed"] >= 5
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == record["steps_completed"]
    assert not (folder / "runs" / "002-depth2").exists()
    no_leftovers(folder)
    return record


def kill_and_wait_saved(sweep: subprocess.Popen, run: Path) -> None:
    """SIGKILL ``sweep``; wait until its ``run`` (which hears SIGTERM when the sweep dies) has saved and ended."""
    sweep.kill()
    sweep.communicate(timeout=60)
    deadline = time.monotonic() + 120
    while not ((run / "results.json").exists() and not (run / LOCK).exists()):
        assert time.monotonic() < deadline, "the run did not stop with its sweep"
        time.sleep(0.1)


def test_ctrl_c_stops_the_run_with_a_checkpoint_and_sweep_resume_finishes(tmp_path):
    folder = tmp_path / "s"
    sweep = start(folder)
    wait_for(folder / "runs" / "001-depth1" / "checkpoint.pt", sweep)
    os.killpg(sweep.pid, signal.SIGINT)  # what a terminal does: the whole foreground process group
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, err
    assert "Traceback" not in err and f"continue it with: gimbench sweep --resume {folder.absolute()}" in err
    done = stopped_first_run(folder, "SIGINT")["steps_completed"]

    resumed = subprocess.run([sys.executable, "-m", "gimbench", "sweep", "--resume", str(folder)],
                             capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    doc = sweep_doc(folder)
    assert doc["status"] == "complete" and [r["status"] for r in doc["runs"]] == ["complete", "complete"]
    assert len(doc["resumed"]) == 1 and doc["resume_command"] is None
    first = results(folder / "runs" / "001-depth1")
    assert first["steps_completed"] == 30 and [s["end_step"] for s in first["sessions"]] == [done, 30]
    assert results(folder / "runs" / "002-depth2")["status"] == "complete"
    no_leftovers(folder)


def test_sigterm_to_the_sweep_alone_reaches_its_run(tmp_path):
    folder = tmp_path / "s"
    sweep = start(folder)
    wait_for(folder / "runs" / "001-depth1" / "checkpoint.pt", sweep)
    sweep.send_signal(signal.SIGTERM)  # `kill PID`, `timeout`: the sweep only, never its run
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 143 and "Traceback" not in err, err
    record = stopped_first_run(folder, "SIGTERM")
    with RunLock(folder / record["folder"]):  # FolderBusy if the run lived on (training, rewriting its results)
        assert results(folder / record["folder"])["status"] == "interrupted"


def test_a_killed_sweep_is_reported_as_such_and_its_run_stops(tmp_path, capsys):
    from gimbench.cli import main

    folder = tmp_path / "s"
    sweep = start(folder)
    run = folder / "runs" / "001-depth1"
    wait_for(run / "checkpoint.pt", sweep)
    kill_and_wait_saved(sweep, run)
    assert results(run)["status"] == "interrupted" and results(run)["failure"]["signal"] == "SIGTERM"
    assert sweep_doc(folder)["status"] == "running" and sweep_doc(folder)["runs"][0]["status"] == "running"
    assert main(["report", str(folder), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"is gone: killed? gimbench sweep --resume {folder} continues it" in " ".join(out.split())
