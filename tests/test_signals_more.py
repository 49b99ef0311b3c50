"""Signals the first trials missed (issue 28, defect 9), each with real processes: a closed terminal (SIGHUP) stops
a run with a checkpoint like SIGTERM, in a sweep too; SIGTERM during ``--find-max-batch`` and two Ctrl-Cs while
torch is importing end in one line; a killed sweep's run still gets its last line into its log."""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from test_sweep_signals import kill_and_wait_saved, start, stopped_first_run, wait_for

from gimbench.runs.folder import LOCK

pytestmark = pytest.mark.slow
ENV = os.environ | {"OMP_NUM_THREADS": "1"}
GIMBENCH = [sys.executable, "-m", "gimbench"]
TINY = ["--preset", "tiny", "--device", "cpu", "--no-probe"]


def read_until(fd: int, text: bytes, process: subprocess.Popen, timeout: float = 180.0) -> bytes:
    """What ``fd`` gives until ``text`` appears in it."""
    seen, deadline = b"", time.monotonic() + timeout
    while text not in seen:
        assert process.poll() is None and time.monotonic() < deadline, seen.decode(errors="replace")
        if select.select([fd], [], [], 0.5)[0]:
            seen += os.read(fd, 65536)
    return seen


def test_a_closed_terminal_stops_a_run_with_a_checkpoint_and_it_resumes(tmp_path):
    """The default --checkpoint-every 0: SIGHUP used to kill the run and lose every step trained."""
    master, terminal = os.openpty()
    run = subprocess.Popen([*GIMBENCH, "run", *TINY, "--steps", "5000", "--out", str(tmp_path), "--name", "r"],
                           stdin=terminal, stdout=terminal, stderr=terminal, env=ENV, start_new_session=True,
                           preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))  # the run's own terminal
    os.close(terminal)
    read_until(master, b"run folder", run)
    time.sleep(2.0)  # training, its progress bar drawn on the terminal
    os.close(master)  # the terminal hangs up: the kernel sends SIGHUP, and writing to it fails from now on
    assert run.wait(timeout=120) == 128 + signal.SIGHUP
    folder = tmp_path / "r"
    doc = json.loads((folder / "results.json").read_text())
    assert doc["status"] == "interrupted" and doc["failure"]["signal"] == "SIGHUP" and doc["steps_completed"] >= 1
    assert (folder / "checkpoint.pt").is_file() and not (folder / LOCK).exists()
    more = doc["steps_completed"] + 2
    resumed = subprocess.run([*GIMBENCH, "run", "--resume", str(folder), "--steps", str(more), "--quiet"],
                             capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((folder / "results.json").read_text())["steps_completed"] == more


def test_sighup_to_a_sweep_stops_its_run_like_sigterm(tmp_path):
    folder = tmp_path / "s"
    sweep = start(folder)
    wait_for(folder / "runs" / "001-depth1" / "checkpoint.pt", sweep)
    sweep.send_signal(signal.SIGHUP)
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 128 + signal.SIGHUP and "Traceback" not in err, err
    stopped_first_run(folder, "SIGHUP")


def test_sigterm_during_the_max_batch_search_is_one_line(tmp_path):
    search = subprocess.Popen([*GIMBENCH, "run", *TINY, "--steps", "2", "--find-max-batch", "--memory-budget",
                               "2GiB", "--out", str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ENV | {"PYTHONUNBUFFERED": "1"})
    assert search.stdout.readline().startswith("batch size 1")  # the first try is measured, the search goes on
    search.send_signal(signal.SIGTERM)
    _, err = search.communicate(timeout=120)
    assert search.returncode == 128 + signal.SIGTERM, err
    assert err.startswith("gimbench: interrupted by SIGTERM; during the --find-max-batch search (batch sizes "
                          "measured: 1") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def importing_torch(process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until ``process`` has mapped libtorch: torch's import has begun, and goes on for a while yet."""
    maps, deadline = Path(f"/proc/{process.pid}/maps"), time.monotonic() + timeout
    while "libtorch" not in maps.read_text():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_two_signals_while_torch_imports_end_in_one_line(tmp_path, sig):
    started = subprocess.Popen([*GIMBENCH, "run", *TINY, "--steps", "2", "--out", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    importing_torch(started)
    started.send_signal(sig)
    time.sleep(0.02)
    started.send_signal(sig)  # an impatient second Ctrl-C gave a traceback from gimbench/data/__init__.py
    _, err = started.communicate(timeout=60)
    assert started.returncode == 128 + sig and err == f"gimbench: interrupted by {sig.name}\n", err
    assert list(tmp_path.iterdir()) == []


def test_a_killed_sweeps_run_writes_its_last_line_into_its_log(tmp_path):
    folder = tmp_path / "s"
    sweep = start(folder)
    run = folder / "runs" / "001-depth1"
    wait_for(run / "checkpoint.pt", sweep)
    kill_and_wait_saved(sweep, run)
    time.sleep(0.5)  # its last line is written after its lock is gone
    log = (folder / "logs" / "001-depth1.log").read_text()
    steps = json.loads((run / "results.json").read_text())["steps_completed"]
    assert f"gimbench: interrupted by SIGTERM after step {steps} of 30" in log, log
