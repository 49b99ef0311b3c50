"""Stop ``gimbench sweep`` at random moments and check that every run it started can be finished.

Each trial starts a sweep of two tiny CPU runs (40 steps, a checkpoint every 5) in a session of its own, as a
shell would, waits a random time (0-10 s from the sweep's start in a third of the trials, so some land while
Python imports torch or between runs; 0-2 s from the first checkpoint of the first or the second run in the
others, so most land mid-training) and sends one of: SIGINT to the process group (a terminal's Ctrl-C),
SIGTERM to the sweep, SIGINT twice to the group, or SIGKILL to the sweep. It then checks:

* sweep.json (when the sweep got far enough to write it) reads, says ``complete`` or ``interrupted`` (or, after
  SIGKILL, ``running`` with nobody holding its lock, which ``gimbench report`` calls killed), and each record
  agrees with its run's results.json;
* every run folder is complete, or holds a loadable checkpoint (interrupted and resumable), or holds none (the
  run was stopped before its first step and is run again); no temporary file is left;
* ``gimbench sweep --resume`` then ends with every run complete at 40 steps.

    python benchmarks/sweep_trials.py --trials 10 --out /tmp/sweep-trials   # one line per trial, then totals
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from interrupt_trials import run_trials  # beside this script

from gimbench.runs.folder import holder

KILLS = ("SIGINT to the group", "SIGTERM", "SIGINT twice", "SIGKILL")
STEPS = 40
SWEEP = [sys.executable, "-m", "gimbench", "sweep", "--model", "gim", "--depth", "1,2", "--preset", "tiny",
         "--device", "cpu", "--steps", str(STEPS), "--batch-size", "16", "--warmup-steps", "1", "--profile-steps", "1",
         "--memory-steps", "0", "--checkpoint-every", "5", "--no-probe", "--quiet"]


def stop(process: subprocess.Popen, kill: str, rng: random.Random) -> None:
    if kill == "SIGKILL":
        process.kill()
    elif kill == "SIGTERM":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGINT)
        if kill == "SIGINT twice":
            time.sleep(rng.uniform(0.0, 1.0))
            os.killpg(process.pid, signal.SIGINT)


def settle(folder: Path, timeout: float = 120.0) -> None:
    """Wait until no run of the sweep is still going (after SIGKILL its run stops on its own SIGTERM)."""
    deadline = time.monotonic() + timeout
    while any(holder(run) for run in (folder / "runs").glob("*")) and time.monotonic() < deadline:
        time.sleep(0.2)


def run_state(run: Path) -> str:
    """complete, resumable (a loadable checkpoint), restart (no checkpoint yet), or broken: <why>."""
    try:
        doc = json.loads((run / "results.json").read_text()) if (run / "results.json").exists() else {}
        if doc.get("status") == "complete":
            return "complete"
        steps = [torch.load(run / n, weights_only=True)["step"] for n in ("checkpoint.pt", "checkpoint.prev.pt")
                 if (run / n).exists()]
    except Exception as e:  # noqa: BLE001  (any failure to read is what we count)
        return f"broken: {type(e).__name__}: {e}"
    return "resumable" if steps else "restart"


def sweep_problems(folder: Path, kill: str) -> list[str]:
    doc = json.loads((folder / "sweep.json").read_text())
    problems = []
    killed = doc["status"] == "running" and kill == "SIGKILL" and holder(folder) is None
    if doc["status"] not in ("complete", "interrupted") and not killed:
        problems.append(f"sweep status {doc['status']}")
    for record in doc["runs"]:
        state = run_state(folder / record["folder"])
        if record["status"] == "complete" and state != "complete":
            problems.append(f"{record['name']} recorded complete but is {state}")
        if record["status"] == "interrupted" and state == "complete":
            problems.append(f"{record['name']} recorded interrupted but is complete")
    return problems


def wait_for_run(process: subprocess.Popen, run: Path) -> None:
    while not (run / "checkpoint.pt").exists() and process.poll() is None:
        time.sleep(0.02)


def trial(i: int, out: Path, rng: random.Random, env: dict) -> dict:
    kill, after = rng.choice(KILLS), rng.choice(("start", "001-depth1", "002-depth2"))
    delay = rng.uniform(0.0, 10.0) if after == "start" else rng.uniform(0.0, 2.0)
    folder = out / f"trial-{i:03d}"
    process = subprocess.Popen([*SWEEP, "--out", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=env, start_new_session=True)
    if after != "start":
        wait_for_run(process, folder / "runs" / after)
    time.sleep(delay)
    stop(process, kill, rng)
    _, err = process.communicate(timeout=600)
    settle(folder)
    runs = {run.name: run_state(run) for run in sorted((folder / "runs").glob("*"))}
    written = (folder / "sweep.json").exists()
    problems = [f"{name}: {state}" for name, state in runs.items() if state.startswith("broken")]
    problems += sweep_problems(folder, kill) if written else []
    problems += [str(p) for p in folder.rglob("*.tmp")]
    row = {"trial": i, "signal": kill, "delay_s": round(delay, 2), "after": after, "exit": process.returncode,
           "sweep": json.loads((folder / "sweep.json").read_text())["status"] if written else None,
           "runs": runs, "traceback": "Traceback" in err, "problems": problems, "resumed": None}
    if written:
        resumed = subprocess.run([sys.executable, "-m", "gimbench", "sweep", "--resume", str(folder), "--quiet"],
                                 capture_output=True, text=True, env=env, timeout=600)
        doc = json.loads((folder / "sweep.json").read_text())
        steps = [json.loads((folder / r["folder"] / "results.json").read_text())["steps_completed"]
                 for r in doc["runs"]]
        row["resumed"] = resumed.returncode == 0 and doc["status"] == "complete" and steps == [STEPS, STEPS]
    return row


def main() -> None:
    rows = run_trials(trial, default=10)
    states = [s for r in rows for s in r["runs"].values()]
    print(json.dumps({"trials": len(rows), "with_problems": sum(bool(r["problems"]) for r in rows),
                      "tracebacks": sum(r["traceback"] for r in rows),
                      "runs_started": len(states), "runs": {s: states.count(s) for s in sorted(set(states))},
                      "resume_failed": sum(r["resumed"] is False for r in rows),
                      "resumed": sum(r["resumed"] is True for r in rows),
                      "by_signal": {k: sum(r["signal"] == k for r in rows) for k in KILLS}}))


if __name__ == "__main__":
    main()
