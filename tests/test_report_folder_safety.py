"""``report --out X --overwrite`` replaces only a previous report: a run folder, a live run, a sweep or a folder of
runs is refused in one line and left byte for byte as it was (issue 28, defect 1)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gimbench.cli import main
from gimbench.config import RunConfig
from gimbench.runs.run import run

TINY = dict(preset="tiny", device="cpu", model="gim", depth=2, batch_size=2, warmup_steps=1, profile_steps=1,
            memory_steps=0, probe=False, quiet=True)
HOLD = ("import sys, time; from gimbench.runs.folder import RunLock\n"
        "with RunLock(sys.argv[1]):\n print('held', flush=True)\n time.sleep(60)")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A completed 2-step run: results.json, checkpoint.pt and checkpoint.prev.pt (copied per test)."""
    out = tmp_path_factory.mktemp("safety")
    run(RunConfig(**TINY, steps=2, checkpoint_every=1, out=str(out), name="done"))
    return out / "done"


@pytest.fixture
def runs(finished, tmp_path) -> Path:
    """``runs/a`` and ``runs/deep/er/b``: two real run folders under one parent."""
    shutil.copytree(finished, tmp_path / "runs" / "a")
    shutil.copytree(finished, tmp_path / "runs" / "deep" / "er" / "b")
    return tmp_path / "runs"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` and a digest of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(argv: list[str], capsys) -> str:
    """Run ``gimbench argv``, assert it ended in one ``gimbench: error:`` line with exit 2; return the line."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("gimbench: error: --out "), err
    return err


def test_overwriting_a_run_folder_with_its_own_report_is_refused(runs, capsys):
    folder = runs / "a"
    before = snapshot(folder)
    assert {"results.json", "checkpoint.pt", "checkpoint.prev.pt"} <= set(before)
    err = refused(["report", str(folder), "--out", str(folder), "--overwrite"], capsys)
    assert f"holds a gimbench run or sweep ({folder}/" in err and "left as it is" in err
    assert snapshot(folder) == before


def test_overwriting_a_folder_of_runs_at_any_depth_is_refused(runs, capsys):
    before = snapshot(runs)
    refused(["report", str(runs / "a"), "--out", str(runs), "--overwrite"], capsys)
    refused(["report", str(runs / "a"), "--out", str(runs / "deep"), "--overwrite"], capsys)
    assert snapshot(runs) == before


@pytest.mark.parametrize("name", ["results.json", "checkpoint.pt", "checkpoint.prev.pt", "sweep.json"])
def test_any_run_or_sweep_file_below_a_previous_report_blocks_overwrite(runs, tmp_path, capsys, name):
    report = tmp_path / "report"
    assert main(["report", str(runs / "a"), "--out", str(report)]) == 0
    (report / "plots" / "x").mkdir()
    (report / "plots" / "x" / name).write_text("{}")
    before = snapshot(report)
    err = refused(["report", str(runs / "a"), "--out", str(report), "--overwrite"], capsys)
    assert f"({report}/plots/x/{name})" in err
    assert snapshot(report) == before


@pytest.mark.slow
def test_a_run_folder_held_by_a_live_process_is_refused_naming_it(runs, capsys):
    folder = runs / "a"
    other = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                             env=os.environ | {"OMP_NUM_THREADS": "1"})
    try:
        assert other.stdout.readline() == "held\n"
        before = snapshot(folder)
        err = refused(["report", str(folder), "--out", str(folder), "--overwrite"], capsys)
        assert f"in use by another gimbench command (pid {other.pid})" in err
        assert snapshot(folder) == before
    finally:
        other.kill()
        other.wait()


def test_a_previous_report_is_replaced_and_anything_else_refused(runs, tmp_path, capsys):
    report = tmp_path / "report"
    assert main(["report", str(runs / "a"), "--out", str(report)]) == 0
    first = (report / "report.json").read_text()
    assert main(["report", str(runs / "a"), str(runs / "deep" / "er" / "b"), "--out", str(report), "--overwrite"]) == 0
    assert (report / "report.json").read_text() != first and (report / "index.html").is_file()
    (report / "notes.txt").write_text("mine")
    refused(["report", str(runs / "a"), "--out", str(report), "--overwrite"], capsys)
    assert (report / "notes.txt").read_text() == "mine"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("<html>my page</html>")
    err = refused(["report", str(runs / "a"), "--out", str(mine), "--overwrite"], capsys)
    assert "is not a previous gimbench report" in err and (mine / "index.html").read_text() == "<html>my page</html>"


def test_an_empty_folder_is_used_and_a_non_empty_one_needs_overwrite(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(runs / "a"), "--out", str(empty)]) == 0 and (empty / "index.html").is_file()
    assert "pass --overwrite" in refused(["report", str(runs / "a"), "--out", str(empty)], capsys)


def test_a_symlink_loop_as_out_is_one_line(runs, tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for out in (loop, loop / "sub"):
        assert "Too many levels of symbolic links" in refused(["report", str(runs / "a"), "--out", str(out)], capsys)
    assert loop.is_symlink()
