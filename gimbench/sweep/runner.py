"""Run a sweep: each configuration in a fresh ``python -m gimbench run`` process; ``sweep.json`` lists them all.

A fresh process per run keeps every memory peak clean (nothing cached from the run before). A run
that fails is recorded with its exit code and last error line, and the sweep goes on.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gimbench.config import ConfigError
from gimbench.results import read_results, write_json_atomic
from gimbench.sweep.grid import Configuration

SCHEMA = "gimbench.sweep/1"


def _error_line(stderr: str, code: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {code}"


def _summary(folder: Path) -> dict:
    """Headline figures and the ``max_batch`` block (if any) of a finished run's results.json."""
    doc = read_results(folder)
    step = doc["step"]
    return {"peak_memory_bytes": step.get("peak_memory_bytes"), "floor_bytes": step.get("floor_bytes"),
            "step_time_ms": step["time_ms"], "run_wall_seconds": doc["wall_seconds"],
            "max_batch": doc.get("max_batch")}


def run_one(config: Configuration, sweep: Path, *, overwrite: bool) -> dict:
    """Run one configuration in a subprocess; its record for sweep.json."""
    runs, logs = sweep / "runs", sweep / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "gimbench", "run", *config.argv, "--out", str(runs), "--name", config.name,
               "--quiet", *(["--overwrite"] if overwrite else [])]
    started = time.perf_counter()
    with open(logs / f"{config.name}.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.PIPE, text=True, check=False)
        log.write(done.stderr)
    record = {"name": config.name, "label": config.label, "options": config.values,
              "command": ["gimbench", *command[3:]], "folder": f"runs/{config.name}", "log": f"logs/{config.name}.log",
              "exit_code": done.returncode, "wall_seconds": time.perf_counter() - started}
    folder = runs / config.name
    if done.returncode == 0 and (folder / "results.json").is_file():
        return record | {"status": "complete", "error": None} | _summary(folder)
    return record | {"status": "failed", "error": _error_line(done.stderr, done.returncode)}


def prepare_folder(folder: Path, *, overwrite: bool) -> None:
    """Create the sweep folder; an existing non-empty one only with ``--overwrite``."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: exists and is not a directory")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ConfigError(f"sweep folder {folder} already exists and is not empty (pass --overwrite to reuse it)")
    folder.mkdir(parents=True, exist_ok=True)


def run_sweep(
    configs: list[Configuration], folder: Path, *, swept: dict, command: list[str], overwrite: bool = False,
    on_start: Callable[[Configuration], None] = lambda c: None,
    on_done: Callable[[Configuration, dict], None] = lambda c, r: None,
) -> dict:
    """Run every configuration in turn, rewriting ``folder/sweep.json`` after each; returns its document."""
    prepare_folder(folder, overwrite=overwrite)
    started = time.perf_counter()
    document = {"schema": SCHEMA, "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": command, "swept": swept, "runs": [], "status": "running"}
    write_json_atomic(folder / "sweep.json", document)
    try:
        for config in configs:
            on_start(config)
            document["runs"].append(run_one(config, folder, overwrite=overwrite))
            on_done(config, document["runs"][-1])
            write_json_atomic(folder / "sweep.json", document)
        document["status"] = "complete"
    except KeyboardInterrupt:
        document["status"] = "interrupted"
        raise
    finally:
        document |= timing(document["runs"], time.perf_counter() - started)
        write_json_atomic(folder / "sweep.json", document)
    return document


def timing(runs: list[dict], wall: float) -> dict:
    """The sweep's wall time against the sum of its runs' (each run's whole process, and training alone)."""
    processes = sum(r["wall_seconds"] for r in runs)
    inside = sum(r.get("run_wall_seconds") or 0.0 for r in runs)
    return {"wall_seconds": wall, "runs_wall_seconds": processes, "runs_in_process_seconds": inside,
            "overhead": wall / processes - 1 if processes else None}
