"""Fuzz: random damage to every kind of file gimbench reads, fed to every command that reads it: each case ends
in success or one line (``gimbench: error:``, a run's ``gimbench: failed:``, bench-compare's regression line),
never a traceback. ``GIMBENCH_FUZZ_CASES`` (default 500) and ``GIMBENCH_FUZZ_SEED`` set the soak.

Commands run in process through ``gimbench.cli.main``, which the ``gimbench`` entry point calls and exits with:
an exception escaping ``main`` here is a traceback there. Two things are cut short so that the cases stay
cheap, both after every file has been read and checked: probes return no accuracies (the linear probes train
for seconds) and report plots are drawn but not rasterized to PNG; a sweep's runs are not started (each would
be a training process of its own).
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import traceback
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from fuzz_files import fresh_copy, mutate_checkpoint, mutate_json

from gimbench.cli import main
from gimbench.report import plots
from gimbench.runs import run as run_module
from gimbench.sweep import runner

CASES = int(os.environ.get("GIMBENCH_FUZZ_CASES", "500"))
SEED = int(os.environ.get("GIMBENCH_FUZZ_SEED", "0"))
ENDINGS = {0: ("",), 1: ("gimbench: failed: ", "gimbench: memory regression"), 2: ("gimbench: error: ",)}


def commands(kind: str, folder: Path, world: dict[str, Path]) -> list[list[str]]:
    """Every command that reads a file of ``kind``, on the damaged copy in ``folder``."""
    run_folder = folder if kind != "sweep" else folder / world["run"].relative_to(world["sweep"])
    plain, details = (["report", *extra, "--out", str(folder.parent / f"{folder.name}-report{'-'.join(extra)}")]
                      for extra in ([], ["--details"]))
    reads_run = [[*plain, str(run_folder)], [*details, str(run_folder)], ["probe", str(run_folder)],
                 ["run", "--resume", str(run_folder), "--steps", "3"]]
    return {"results": reads_run, "checkpoint": reads_run[2:],
            "sweep": [[*plain, str(folder)], [*details, str(folder)], ["sweep", "--resume", str(folder), "--quiet"]],
            "bench": [["bench-compare", str(world["bench"]), str(folder / "bench.json")],
                      ["bench-compare", str(folder / "bench.json"), str(world["bench"])]]}[kind]


def damaged(kind: str, world: dict[str, Path], target: Path, rng: random.Random) -> tuple[Path, str]:
    """A copy of the ``kind`` file's folder under ``target`` with that file damaged; what was done."""
    if kind == "bench":
        target.mkdir()
        (target / "bench.json").write_bytes(world["bench"].read_bytes())
        return target, mutate_json(target / "bench.json", rng)
    folder = fresh_copy(world["sweep" if kind == "sweep" else "run"], target)
    if kind == "checkpoint":
        return folder, mutate_checkpoint(folder / "checkpoint.pt", rng)
    return folder, mutate_json(folder / ("sweep.json" if kind == "sweep" else "results.json"), rng)


def outcome(argv: list[str]) -> tuple[int | None, str, str | None]:
    """(exit status, stderr, traceback of an exception that escaped ``main``, if one did)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as e:  # argparse's own errors, as the entry point would exit with them
        code = e.code
    except BaseException:  # noqa: BLE001 (exactly what the test looks for)
        return None, err.getvalue(), traceback.format_exc()
    return code, err.getvalue(), None


def acceptable(argv: list[str], code: int | None, err: str) -> bool:
    """Success, or one line; a sweep whose runs failed (here: were not started) says so in its table, exit 1."""
    lines = err.splitlines()
    if code == 0 or (code == 1 and argv[0] == "sweep"):
        return "Traceback" not in err
    return code in ENDINGS and len(lines) == 1 and lines[0].startswith(ENDINGS[code])


def cheapen(monkeypatch) -> None:
    """Cut the expensive work after the reading: probes, PNG rasterizing, a sweep's training processes."""
    monkeypatch.setattr(run_module, "probe_results", lambda *args, **kwargs: {})

    def closed(figure) -> bytes:
        plt.close(figure)
        return b""

    def refused(config, sweep, **kwargs) -> dict:
        return runner._placeholder(config) | {"status": "failed", "exit_code": 2, "error": "not started (fuzz)"}

    monkeypatch.setattr(plots, "png", closed)
    monkeypatch.setattr(runner, "run_one", refused)


@pytest.fixture
def cheap(monkeypatch) -> None:
    cheapen(monkeypatch)


def fuzz(world: dict[str, Path], tmp: Path, cases: int, seed: int) -> tuple[list[str], dict]:
    """Run ``cases`` random cases; the problems found (an escaped exception or a wrong ending), in words, and
    how many cases ended with each exit status."""
    rng, problems, seen = random.Random(seed), [], {0: 0, 1: 0, 2: 0}
    for case in range(cases):
        kind = ("results", "sweep", "checkpoint", "bench")[case % 4]
        folder, how = damaged(kind, world, tmp / f"case{case}", rng)
        argv = rng.choice(commands(kind, folder, world))
        code, err, escaped = outcome(argv)
        seen[code] = seen.get(code, 0) + 1
        if escaped is not None or not acceptable(argv, code, err):
            where = "\n".join((escaped or "").strip().splitlines()[-3:])
            problems.append(f"case {case} ({kind}: {how}): gimbench {' '.join(argv[:2])}: exit {code}\n{err}{where}")
    return problems, seen


@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_the_world_is_valid(world, cheap, tmp_path):
    """Undamaged, every command reads every file (so the fuzz damages working inputs)."""
    for kind in ("results", "checkpoint", "sweep", "bench"):
        folder = tmp_path / kind
        if kind == "bench":
            folder.mkdir()
            (folder / "bench.json").write_bytes(world["bench"].read_bytes())
        else:
            fresh_copy(world["sweep" if kind == "sweep" else "run"], folder)
        for argv in commands(kind, folder, world):
            code, err, escaped = outcome(argv)
            assert escaped is None and code == 0, (argv, err, escaped)


@pytest.mark.slow
def test_random_damage_ends_in_success_or_one_line(world, cheap, tmp_path):
    problems, seen = fuzz(world, tmp_path, CASES, SEED)
    assert not problems, f"{len(problems)} of {CASES} cases (seed {SEED}):\n" + "\n".join(problems[:20])
    assert seen[2] > CASES // 4 and seen[0] > 0  # the damage is both refused and, where harmless, read through
