"""Gather the runs a report shows: run folders as given, and every run listed in a sweep folder's sweep.json."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from gimbench.config import ConfigError, RunConfig, preset_lr
from gimbench.models.presets import PRESETS
from gimbench.results.paths import check_utf8
from gimbench.results.schema import ModuleResult, RunResult, StepResult, read_results
from gimbench.runs.folder import holder
from gimbench.sweep.runner import read_sweep, stale

# Config fields that tell runs apart in labels, besides the strategy and the depth.
VARYING = ("modality", "preset", "batch_size", "steps", "lr", "seed", "device", "data", "context", "nproc")


@dataclass
class Entry:
    """One run in a report: its folder and results.json, or, for a failed sweep run, the sweep's record."""

    folder: Path
    doc: dict | None
    record: dict | None = None  # the sweep.json record, when the run came from a sweep

    @property
    def config(self) -> dict:
        """The run's resolved config; for a failed run, the options it was given over the defaults."""
        return self.doc["config"] if self.doc else RunConfig().to_dict() | self.record["options"]

    @property
    def strategy(self) -> str:
        """``cpc``, ``gim per-module``, ...: what sets the gradient flow (with the memory savers and the
        ``--modules`` cut, where they are not the defaults)."""
        c = self.config
        return " ".join([self._method(c), *_savers(c)])

    @staticmethod
    def _method(c: dict) -> str:
        if c["model"] == "gim":
            mode = c.get("gim_mode") or "per-module"
            return f"gim {mode} K={c.get('max_inflight')}" if mode == "module-parallel" else f"gim {mode}"
        if c["model"] == "cpc" and c.get("pipeline", "none") != "none":
            return f"cpc {c['pipeline']} M={c.get('micro_batches')}"
        return c["model"]


def _savers(c: dict) -> list[str]:
    """``checkpointed``, ``accumulate M``, ``modules K`` (with ``balanced``), the precision and optimizer (``bf16``,
    ``sgd``), for options away from their defaults (configs recorded before they existed have none)."""
    words = ["checkpointed"] if c.get("checkpoint_activations") else []
    words += [c["precision"]] if c.get("precision", "fp32") != "fp32" else []
    words += [c["optimizer"]] if c.get("optimizer", "adam") != "adam" else []
    words += [f"accumulate {c['accumulate']}"] if (c.get("accumulate") or 1) > 1 else []
    if c.get("modules") not in (None, c.get("depth")):
        words += [f"modules {c['modules']}" + (" balanced" if c.get("split") == "balanced" else "")]
    return words


def _known(cls, values: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def result_from_doc(doc: dict, folder: Path) -> RunResult:
    """A results.json document as the ``RunResult`` it was written from (fields added later are kept as they are)."""
    step = dict(doc["step"])
    memory = {k: step.pop(k) for k in list(step) if k not in {f.name for f in fields(StepResult)}}
    return RunResult(**_known(RunResult, doc | {"folder": str(folder)}) | {
        "modules": [ModuleResult(**_known(ModuleResult, m)) for m in doc["modules"]],
        "step": StepResult(**_known(StepResult, step), memory=memory)})


def _read_sweep(folder: Path) -> tuple[dict, list[Entry]]:
    sweep = read_sweep(folder)
    entries = []
    for record in sweep["runs"]:
        run = folder / record["folder"]
        doc = read_results(run) if record["status"] == "complete" else None
        entries.append(Entry(run, doc, record))
    return sweep | {"stale": stale(folder, sweep), "running_now": running_now(folder, sweep)}, entries


def running_now(folder: Path, sweep: dict) -> int:
    """How many of a sweep's runs recorded as ``running`` are in progress: all of them while the sweep's process
    lives (a run may still be starting), else those whose own lock a live process holds. The others were
    stopped with their sweep (``interrupted``)."""
    running = [r for r in sweep.get("runs", []) if isinstance(r, dict) and r.get("status") == "running"]
    if not stale(folder, sweep):
        return len(running) if sweep.get("status") == "running" else 0
    return sum(holder(folder / str(r.get("folder"))) is not None for r in running)


def collect(paths: list[Path]) -> tuple[list[Entry], list[dict]]:
    """The runs of every run or sweep folder given, in order, and the sweep documents among them."""
    entries, sweeps = [], []
    for path in map(Path, paths):
        check_utf8(path, "FOLDER")
        if not path.is_dir():
            raise ConfigError(not_a_folder(path))
        inside = run_folders(path)
        if inside:
            found, found_sweeps = collect(inside)
            entries += found
            sweeps += found_sweeps
        elif (path / "sweep.json").is_file():
            sweep, found = _read_sweep(path)
            sweeps.append(sweep | {"folder": str(path)})
            entries += found
        else:
            entries.append(Entry(path, read_results(path)))
    return entries, sweeps


def not_a_folder(path: Path) -> str:
    """Why ``path`` cannot be reported: it does not exist, or is a file (of a run or sweep folder: name it)."""
    if not path.exists():
        return f"{path} does not exist (give run folders or sweep folders)"
    parent = path.absolute().parent
    if (parent / "results.json").is_file() or (parent / "sweep.json").is_file():
        return f"{path} is a file of the run or sweep folder {path.parent}: give the folder, gimbench report " \
               f"{path.parent}"
    return f"{path} is not a folder (give run folders or sweep folders)"


def run_folders(path: Path) -> list[Path]:
    """The run and sweep folders directly inside ``path`` (a folder such as ``reports/runs``), in name order;
    none when ``path`` is itself a run or sweep folder."""
    if (path / "results.json").exists() or (path / "sweep.json").exists():
        return []
    return sorted(p for p in path.iterdir() if (p / "results.json").is_file() or (p / "sweep.json").is_file())


UNRESOLVED = (None, "auto")  # a run that did not finish records the options it was given, not their values


def setting_value(config: dict, key: str) -> str:
    """``config[key]`` as a report compares runs by it: a learning rate that is the preset's for the run's optimizer
    is "preset", so an SGD row (its own default rate) shares the setting of the Adam rows it is compared with."""
    value, sizes = config.get(key), PRESETS.get(config.get("preset"), {}).get(config.get("modality"))
    if key == "lr" and sizes is not None and value == preset_lr(sizes, config.get("optimizer", "adam")):
        return "preset"
    return str(value)


def _varying(entries: list[Entry]) -> list[str]:
    """The options whose values differ between runs; an unresolved value (a default not yet chosen by a run that
    did not finish) differs from none."""
    return [k for k in VARYING
            if len({setting_value(e.config, k) for e in entries if e.config.get(k) not in UNRESOLVED}) > 1]


def series_key(entry: Entry, entries: list[Entry]) -> str:
    """What one line of a plot over depth stands for: the strategy and any other option that differs."""
    return " · ".join([entry.strategy, *(f"{k} {entry.config[k]}" for k in _varying(entries)
                                         if entry.config.get(k) not in UNRESOLVED)])


def labels(entries: list[Entry]) -> list[str]:
    """A short label per run: its series (see ``series_key``) and its depth (where it is known)."""
    return [" · ".join([series_key(e, entries), *([f"d{e.config['depth']}"] if e.config.get("depth") else [])])
            for e in entries]
