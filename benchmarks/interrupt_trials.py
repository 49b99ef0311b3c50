"""Interrupt ``gimbench run`` at random moments and check that no run folder is ever left corrupted.

Each trial starts a tiny CPU run that checkpoints every step, waits a random time (counted from the
process start in a quarter of the trials, so some land while Python is still importing torch, and from
the moment the run folder appears in the others, so most land mid-step or mid-write), then sends
SIGINT, SIGTERM, SIGINT twice, or SIGKILL.
A folder is corrupted when a file under its final name cannot be read: a results.json that is not JSON
with a known status, or a checkpoint that ``torch.load(..., weights_only=True)`` refuses. Whenever a
checkpoint exists, ``gimbench run --resume`` must then complete the run.

    python benchmarks/interrupt_trials.py --trials 20 --out /tmp/trials   # prints one line per trial, then totals
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

KILLS = ("SIGINT", "SIGTERM", "SIGINT twice", "SIGKILL")
RUN = [sys.executable, "-m", "gimbench", "run", "--preset", "tiny", "--device", "cpu", "--depth", "2",
       "--batch-size", "2", "--steps", "100000", "--checkpoint-every", "1", "--no-probe", "--quiet"]


def wait_for_start(process: subprocess.Popen, folder: Path) -> None:
    while not folder.exists() and process.poll() is None:
        time.sleep(0.02)


def interrupt(process: subprocess.Popen, kill: str, delay: float, rng: random.Random) -> None:
    time.sleep(delay)
    if kill == "SIGKILL":
        process.kill()
        return
    process.send_signal(signal.SIGTERM if kill == "SIGTERM" else signal.SIGINT)
    if kill == "SIGINT twice":
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGINT)


def damaged(folder: Path) -> list[str]:
    """Files under a final name that cannot be read."""
    problems = []
    results = folder / "results.json"
    if results.exists():
        try:
            status = json.loads(results.read_text())["status"]
            assert status in ("complete", "interrupted", "failed"), status
        except Exception as e:  # noqa: BLE001  (any failure to read is what we count)
            problems.append(f"results.json: {type(e).__name__}: {e}")
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        if (folder / name).exists():
            try:
                assert isinstance(torch.load(folder / name, weights_only=True)["step"], int)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{name}: {type(e).__name__}: {e}")
    return problems


def resumes(folder: Path, env: dict) -> bool | None:
    """Whether ``--resume`` completes the run (None: no checkpoint, nothing to resume)."""
    if not any((folder / n).exists() for n in ("checkpoint.pt", "checkpoint.prev.pt")):
        return None
    done = max(torch.load(folder / n, weights_only=True)["step"] for n in ("checkpoint.pt", "checkpoint.prev.pt")
               if (folder / n).exists())
    out = subprocess.run([sys.executable, "-m", "gimbench", "run", "--resume", str(folder), "--steps", str(done + 2),
                          "--quiet"], capture_output=True, text=True, env=env, timeout=600)
    return out.returncode == 0 and json.loads((folder / "results.json").read_text())["status"] == "complete"


def trial(i: int, out: Path, rng: random.Random, env: dict) -> dict:
    kill, from_start = rng.choice(KILLS), rng.random() < 0.25
    delay = rng.uniform(0.5, 6.0) if from_start else rng.uniform(0.0, 4.0)
    folder = out / f"trial-{i:03d}"
    process = subprocess.Popen([*RUN, "--out", str(out), "--name", folder.name], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env)
    if not from_start:
        wait_for_start(process, folder)
    interrupt(process, kill, delay, rng)
    _, err = process.communicate(timeout=600)
    problems = damaged(folder) if folder.exists() else []
    status = json.loads((folder / "results.json").read_text())["status"] if (folder / "results.json").exists() \
        and not problems else None
    return {"trial": i, "signal": kill, "delay_s": round(delay, 2), "after": "start" if from_start else "folder",
            "exit": process.returncode, "status": status,
            "traceback": "Traceback" in err, "corrupted": problems,
            "temp_files": sorted(p.name for p in folder.glob(".*.tmp")) if folder.exists() else [],
            "resumed": resumes(folder, env) if folder.exists() and not problems else None}


def run_trials(trial: Callable[[int, Path, random.Random, dict], dict], *, default: int) -> list[dict]:
    """Parse ``--trials --out --seed``, run ``trial(i, out, rng, env)`` for each, printing its row; the rows.
    Shared with ``sweep_trials.py``."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=default)
    parser.add_argument("--out", type=Path, required=True, help="folder for the trials (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True)
    rng, env = random.Random(args.seed), os.environ | {"OMP_NUM_THREADS": "1"}
    rows = []
    for i in range(args.trials):
        rows.append(trial(i, args.out, rng, env))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    rows = run_trials(trial, default=20)
    print(json.dumps({"trials": len(rows), "corrupted": sum(bool(r["corrupted"]) for r in rows),
                      "tracebacks": sum(r["traceback"] for r in rows),
                      "resume_failed": sum(r["resumed"] is False for r in rows),
                      "resumed": sum(r["resumed"] is True for r in rows),
                      "by_signal": {k: sum(r["signal"] == k for r in rows) for k in KILLS}}))


if __name__ == "__main__":
    main()
