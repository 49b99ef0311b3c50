"""``report --out X --overwrite`` replaces only a previous report: a run folder, a live run, a sweep or a folder of
runs is refused in one line and left byte for byte as it was (issue 28, defect 1)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import test_run_lock
import test_write_failures

from gimbench.cli import main
from gimbench.report import export
from gimbench.report import folder as folder_module

HOLD = test_run_lock.HOLD
finished = test_run_lock.finished  # fixture: a completed 2-step run, results.json and both checkpoints
tmpfs = test_write_failures.tmpfs  # fixture: a 2 MiB tmpfs (root only, else skipped)


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


def ended(argv: list[str], capsys, code: int, start: str) -> str:
    """Run ``gimbench argv``; assert it exited ``code`` with one line beginning ``start``; return the line."""
    capsys.readouterr()
    got = main(argv)
    err = capsys.readouterr().err
    assert got == code and err.count("\n") == 1 and err.startswith(start), err
    return err


def refused(argv: list[str], capsys) -> str:
    return ended(argv, capsys, 2, "gimbench: error: --out ")


def failed(argv: list[str], capsys) -> str:
    return ended(argv, capsys, 1, "gimbench: failed: cannot write ")


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


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
def test_a_real_full_disk_keeps_the_old_report_whole_and_writes_no_partial_file(runs, tmpfs, capsys):
    report, fresh = tmpfs / "report", tmpfs / "fresh"
    assert main(["report", str(runs / "a"), "--out", str(report)]) == 0  # ~240 KB
    shutil.copytree(runs / "a", runs / "c")
    three = [str(runs / "a"), str(runs / "deep" / "er" / "b"), str(runs / "c")]  # a report of ~370 KB
    before = snapshot(report)
    free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
    (tmpfs / "filler").write_bytes(b"\0" * (free - 32 * 1024))  # too little, even with the old report removed
    err = failed(["report", *three, "--out", str(report), "--overwrite"], capsys)
    assert f"{report}: No space left on device" in err
    assert snapshot(report) == before and "</html>" in (report / "index.html").read_text()
    failed(["report", *three, "--out", str(fresh)], capsys)
    assert listing(tmpfs) == ["filler", "report"]  # no partial report, no temporary folder left
    (tmpfs / "filler").unlink()
    assert main(["report", *three, "--out", str(report), "--overwrite"]) == 0
    assert snapshot(report) != before and listing(tmpfs) == ["report"]


def test_a_write_refused_midway_keeps_the_old_report(runs, tmp_path, capsys, monkeypatch):
    """The same without root: the system refuses the fifth file of the new report (ENOSPC)."""
    report = tmp_path / "report"
    assert main(["report", str(runs / "a"), "--out", str(report)]) == 0
    before, real, calls = snapshot(report), folder_module.put, []

    def put(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 5:
            path.write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(export, "put", put)
    assert f"{report}: No space left on device" in failed(["report", str(runs / "a"), "--out", str(report),
                                                          "--overwrite"], capsys)
    assert len(calls) == 5 and snapshot(report) == before and listing(tmp_path) == ["report", "runs"]
