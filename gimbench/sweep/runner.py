"""Run a sweep: each configuration in a fresh ``python -m gimbench run`` process; ``sweep.json`` lists them all.

A fresh process per run keeps every memory peak clean (nothing cached from the run before). A run
that fails is recorded with its exit code and last error line, and the sweep goes on. A signal stops
the run in progress with a checkpoint (see ``gimbench.sweep.signals``), records it as ``interrupted``
with its resume command, and ends the sweep; ``resume_sweep`` runs what is not complete yet. ``gimbench
compare`` runs its rows as such a sweep, and continues one the same way.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gimbench.config import ConfigError
from gimbench.results.atomic import WriteError, refused
from gimbench.results.paths import check_utf8
from gimbench.results.schema import read_results, write_json_atomic
from gimbench.results.schemas import SWEEP, read
from gimbench.runs.checkpoint import LATEST, PREVIOUS
from gimbench.runs.folder import RunLock, holder
from gimbench.sweep.grid import Configuration
from gimbench.sweep.signals import START_OPTIONS, ForwardSignals

SCHEMA = "gimbench.sweep/1"


def _error_line(output: str, code: int) -> str:
    """A failed run's own last message (``gimbench: ...``), else its last line (a traceback's), else its code."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("gimbench: ")]
    return (said or lines or [f"exit code {code}"])[-1]


def _results(folder: Path) -> dict | None:
    try:
        return read_results(folder)
    except ConfigError:
        return None


def _summary(doc: dict) -> dict:
    """Headline figures and the ``max_batch`` block (if any) of a finished run's results.json."""
    step = doc["step"]
    return {"peak_memory_bytes": step.get("peak_memory_bytes"), "floor_bytes": step.get("floor_bytes"),
            "step_time_ms": step["time_ms"], "run_wall_seconds": doc["wall_seconds"],
            "max_batch": doc.get("max_batch")}


def _resumable(folder: Path) -> bool:
    return any((folder / name).is_file() for name in (LATEST, PREVIOUS))


def run_command(config: Configuration, runs: Path, *, overwrite: bool, resume: bool = False) -> list[str]:
    """The ``python -m gimbench run`` command of a configuration; with ``resume``, one that continues the run
    from its checkpoint where its folder holds one (else the run starts afresh, replacing what is there)."""
    folder = runs / config.name
    if resume and _resumable(folder):
        return [sys.executable, "-m", "gimbench", "run", "--resume", str(folder), "--quiet"]
    replace = overwrite or (resume and folder.exists())
    return [sys.executable, "-m", "gimbench", "run", *config.argv, "--out", str(runs), "--name", config.name,
            "--quiet", *(["--overwrite"] if replace else [])]


def _outcome(code: int, folder: Path, output: str, stop: ForwardSignals) -> dict:
    """A finished run's status fields: complete (with its figures), interrupted by the sweep, or failed."""
    doc = _results(folder)
    if doc is not None and doc.get("status") == "complete":  # even if a signal caught it on its way out
        return {"status": "complete", "error": None} | _summary(doc)
    if stop.signal is not None and code not in (1, 2):  # 1, 2: the run failed or refused on its own
        said = [line for line in output.splitlines() if line.startswith("gimbench: interrupted")]
        command = shlex.join(["gimbench", "run", "--resume", str(folder.absolute())]) if _resumable(folder) else None
        return {"status": "interrupted", "error": said[-1] if said else f"stopped by {stop.signal.name}",
                "resume_command": command, "steps_completed": (doc or {}).get("steps_completed")}
    return {"status": "failed", "error": _error_line(output, code)}


def run_one(config: Configuration, sweep: Path, *, overwrite: bool, stop: ForwardSignals | None = None,
            before: dict | None = None) -> dict:
    """Run one configuration in a subprocess (resuming it if its folder holds a checkpoint); its record for
    sweep.json. ``before`` is its record from an earlier session of the sweep, if any."""
    stop = stop or ForwardSignals()
    runs, logs = sweep / "runs", sweep / "logs"
    command = run_command(config, runs, overwrite=overwrite, resume=before is not None)
    started, log = time.perf_counter(), logs / f"{config.name}.log"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        start = log.stat().st_size if before and log.exists() else 0
        # The run writes straight into its log, stderr too: its last line (``interrupted ...``) reaches the log
        # even when the sweep is killed, as it did not through a temporary file the sweep copied over.
        with open(log, "ab" if before else "wb") as out:
            code = stop.wait(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **START_OPTIONS))
        output = log.read_bytes()[start:].decode(errors="replace")
    except OSError as e:
        if refused(e) is None:
            raise
        raise WriteError(log, refused(e)) from None
    record = {"name": config.name, "label": config.label, "options": config.values,
              "command": ["gimbench", *command[3:]], "folder": f"runs/{config.name}", "log": f"logs/{config.name}.log",
              "exit_code": code, "wall_seconds": time.perf_counter() - started + (before or {}).get("wall_seconds", 0)}
    return record | _outcome(code, runs / config.name, output, stop)


def prepare_folder(folder: Path, *, overwrite: bool) -> None:
    """Create the sweep folder; an existing non-empty one only with ``--overwrite``."""
    check_utf8(folder, "--out")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: exists and is not a directory")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ConfigError(f"sweep folder {folder} already exists and is not empty (pass --overwrite to reuse it)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WriteError(folder, e) from None


def run_sweep(
    configs: list[Configuration], folder: Path, *, swept: dict, command: list[str], overwrite: bool = False,
    on_start: Callable[[Configuration], None] = lambda c: None,
    on_done: Callable[[Configuration, dict], None] = lambda c, r: None,
) -> dict:
    """Run every configuration in turn, rewriting ``folder/sweep.json`` after each; returns its document."""
    prepare_folder(folder, overwrite=overwrite)
    document = {"schema": SCHEMA, "started": _now(), "command": command, "swept": swept, "runs": [],
                "status": "running"}
    return _run(configs, folder, document, overwrite=overwrite, on_start=on_start, on_done=on_done)


def read_sweep(folder: Path) -> dict:
    """A sweep folder's sweep.json, checked against its schema (``gimbench.results.schemas``), or ``ConfigError``
    saying in one line what is wrong with it."""
    path = Path(folder) / "sweep.json"
    try:
        return read(path, SWEEP, "a gimbench sweep")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: is {folder} a gimbench sweep folder?") from None


def stale(folder: Path, sweep: dict) -> bool:
    """Whether a sweep.json that says ``running`` was left by a process that is gone (killed)."""
    return sweep.get("status") == "running" and holder(folder) is None


def resume_sweep(
    configs: list[Configuration], folder: Path, document: dict,
    on_start: Callable[[Configuration], None] = lambda c: None,
    on_done: Callable[[Configuration, dict], None] = lambda c, r: None,
) -> dict:
    """Run the configurations of an earlier sweep that are not complete: interrupted runs resume from their
    checkpoints, the others start afresh. ``document`` is its sweep.json; returns the updated document."""
    document = document | {"status": "running", "resumed": [*document.get("resumed", []), _now()]}
    return _run(configs, folder, document, overwrite=False, on_start=on_start, on_done=on_done)


def _complete(folder: Path) -> dict | None:
    doc = _results(folder)
    return doc if doc is not None and doc.get("status") == "complete" else None


def _run(configs, folder: Path, document: dict, *, overwrite: bool, on_start, on_done) -> dict:
    started = time.perf_counter() - (document.get("wall_seconds") or 0.0)  # a resumed sweep adds to its time
    earlier = {r["name"]: r for r in document["runs"]}
    with RunLock(folder, what="sweep folder"), ForwardSignals() as stop:
        document |= {"pid": os.getpid(), "signal": None}
        _write(folder, document)
        try:
            for config in configs:
                if stop.signal is not None:
                    break
                record = earlier.get(config.name)
                done = _complete(folder / "runs" / config.name) if record is not None else None
                if done is not None:  # complete, if perhaps not yet recorded as such (a sweep killed just then)
                    _put(document, record | {"status": "complete", "error": None} | _summary(done))
                    continue
                on_start(config)
                _put(document, _placeholder(config))
                _write(folder, document)
                record = run_one(config, folder, overwrite=overwrite, stop=stop, before=record)
                _put(document, record)
                on_done(config, record)
                _write(folder, document)
            ended = {r["name"] for r in document["runs"] if r["status"] in ("complete", "failed")}
            stopped = stop.signal is not None and any(c.name not in ended for c in configs)
            document["status"] = "interrupted" if stopped else "complete"
            document["signal"] = None if stop.signal is None else stop.signal.name
            document["resume_command"] = shlex.join(["gimbench", made_by(document), "--resume",
                                                     str(folder.absolute())]) if stopped else None
        finally:
            document |= timing(document["runs"], time.perf_counter() - started)
            _write(folder, document)
    return document


def made_by(document: dict) -> str:
    """The command that made a sweep folder and continues it (``sweep`` or ``compare``)."""
    command = document.get("command") or []
    return command[1] if command[:1] == ["gimbench"] and command[1:2] in (["sweep"], ["compare"]) else "sweep"


def _put(document: dict, record: dict) -> None:
    """Add ``record`` to the sweep's runs, in place of an earlier record of the same run."""
    runs = document["runs"]
    at = next((i for i, r in enumerate(runs) if r["name"] == record["name"]), None)
    if at is None:
        runs.append(record)
    else:
        runs[at] = record


def _placeholder(config: Configuration) -> dict:
    return {"name": config.name, "label": config.label, "options": config.values, "command": None,
            "folder": f"runs/{config.name}", "log": f"logs/{config.name}.log", "status": "running",
            "exit_code": None, "error": None, "wall_seconds": 0.0}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write(folder: Path, document: dict) -> None:
    write_json_atomic(folder / "sweep.json", document)


def timing(runs: list[dict], wall: float) -> dict:
    """The sweep's wall time against the sum of its runs' (each run's whole process, and training alone)."""
    processes = sum(r["wall_seconds"] for r in runs)
    inside = sum(r.get("run_wall_seconds") or 0.0 for r in runs)
    return {"wall_seconds": wall, "runs_wall_seconds": processes, "runs_in_process_seconds": inside,
            "overhead": wall / processes - 1 if processes else None}
