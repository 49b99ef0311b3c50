"""``gimbench table``: every method trained on the same data, probed, and set out like the paper's table.

Rows: random init, MFCC features (audio), supervised, greedy supervised, CPC and GIM; columns: the
probe tasks at the last module (the reference's probe point). The paper's published numbers are kept
beside ours, clearly labelled: they are on STL-10 / LibriSpeech, not on our data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from gimbench.config import RunConfig, flag, modality_of
from gimbench.results.schema import RunResult, write_json_atomic
from gimbench.runs.run import run
from gimbench.strategies import STRATEGIES

SCHEMA = "gimbench.table/1"
METHODS = {
    "audio": ["random", "mfcc", "supervised", "greedy-supervised", "cpc", "gim"],
    "vision": ["random", "supervised", "greedy-supervised", "cpc", "gim"],
}
# Linear-probe accuracy (%) published in the GIM paper (Löwe et al., NeurIPS 2019, Tables 1 and 2).
PAPER = {
    "audio": {"random": {"speaker": 1.9, "phone": 27.6}, "mfcc": {"speaker": 17.6, "phone": 39.7},
              "supervised": {"speaker": 98.9, "phone": 77.7}, "greedy-supervised": {"speaker": 98.7, "phone": 73.4},
              "cpc": {"speaker": 99.6, "phone": 64.9}, "gim": {"speaker": 99.4, "phone": 62.5}},
    "vision": {"random": {"class": 27.0}, "supervised": {"class": 71.4}, "greedy-supervised": {"class": 65.2},
               "cpc": {"class": 80.5}, "gim": {"class": 81.9}},
}


# Options ``gimbench table`` refuses, by dest: (whether the given value does not apply, why), for the one line.
ONE_PROCESS = "gimbench table trains every method in one process"
NOT_FOR_TABLE: dict[str, tuple[Callable[[object], bool], str]] = {
    "model": (lambda v: True, "gimbench table trains every method of the modality itself"),
    "name": (lambda v: True, "gimbench table names each run after its method"),
    "probe": (lambda v: not v, "gimbench table probes every run: its columns are probe accuracies"),
    "nproc": (lambda v: v != 1, ONE_PROCESS),
}


def _spreading(dest: str, value: object) -> str | None:
    """Why ``gimbench table`` cannot take ``dest``'s value: it picks, or belongs to, a strategy that spreads
    modules over processes (the strategies say which); ``None`` otherwise."""
    for method in STRATEGIES.values():
        if method.choice == dest and getattr(method.variant(RunConfig(**{dest: value})), "spreads", False):
            return f"{ONE_PROCESS} ({flag(dest)} {value} needs --nproc 2 or more)"
        for strategy in method.variants.values():
            if strategy.spreads and dest in strategy.options and value != getattr(RunConfig, dest):
                return f"{ONE_PROCESS} (it applies to {strategy.called or 'a run spread over processes'})"
    return None


def not_for_table(given: dict) -> str | None:
    """The error line for the first option given to ``gimbench table`` (``given``: its value by RunConfig field)
    that it would ignore or cannot run (as ``gimbench run`` refuses options that do not apply); ``None`` if none."""
    for dest in sorted(given):
        refused, why = NOT_FOR_TABLE.get(dest, (lambda v: False, ""))
        why = why if refused(given[dest]) else _spreading(dest, given[dest])
        if why:
            option = flag(dest) if isinstance(given[dest], bool) else f"{flag(dest)} {given[dest]}"
            return f"{option} does not apply: {why}; drop it"
    return None


def table_row(method: str, result: RunResult) -> dict:
    """One row: the method, its run folder, last-module accuracy and chance per task."""
    return {
        "method": method, "run": result.folder,
        "accuracy": {task: p["per_module"][-1] for task, p in result.probe.items()},
        "chance": {task: p["chance"] for task, p in result.probe.items()},
    }


def build_table(
    base: RunConfig, *, out: Path | None = None,
    run_one: Callable[[RunConfig], RunResult] | None = None,
) -> tuple[dict, Path]:
    """Train and probe every method of ``base.modality`` with ``base``'s other options; write table.json.

    Returns the table document and the folder holding it and the runs.
    """
    run_one = run_one or run
    base = replace(base, modality=modality_of(base))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(out) if out else Path("reports/tables") / f"{stamp}-{base.modality}"
    rows = []
    for method in METHODS[base.modality]:
        cfg = replace(base, model=method, depth=None if method == "mfcc" else base.depth, out=str(folder / "runs"),
                      name=method, probe=True)
        rows.append(table_row(method, run_one(cfg)))
    document = {"schema": SCHEMA, "modality": base.modality, "rows": rows, "paper": PAPER[base.modality],
                "paper_note": "the paper's numbers, on STL-10 / LibriSpeech train-clean-100, not on this data"}
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "table.json", document)
    return document, folder
