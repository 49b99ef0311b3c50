"""A folder name that is not UTF-8 is refused in one line before anything runs, by every command that writes
(run, sweep, compare, report): accepted, ``compare`` trained every row and then failed writing its report with a
UnicodeEncodeError (issue 28, defect 7)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gimbench.cli import main
from gimbench.config import RunConfig
from gimbench.runs.run import run

TINY = ["--preset", "tiny", "--device", "cpu", "--depth", "1", "--steps", "1", "--batch-size", "4", "--no-probe",
        "--quiet"]
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def bad(folder: Path) -> str:
    """``folder/cmp\\xff`` as Python sees such a command-line argument (a lone surrogate)."""
    return os.fsdecode(os.fsencode(folder) + b"/cmp\xff")


def refused(argv: list[str], capsys) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a UTF-8 name" in err and "cmp\\xff" in err, err
    return err


@pytest.mark.parametrize("command", [["run", *TINY], ["sweep", *TINY], ["compare", *TINY]])
def test_run_sweep_and_compare_refuse_a_non_utf8_out_before_anything_runs(tmp_path, capsys, command):
    assert refused([*command, "--out", bad(tmp_path)], capsys).startswith("gimbench: error: --out ")
    assert list(tmp_path.iterdir()) == []


def test_report_refuses_a_non_utf8_out_or_folder(tmp_path, capsys):
    run(RunConfig(preset="tiny", device="cpu", depth=1, steps=1, batch_size=2, probe=False, quiet=True,
                  out=str(tmp_path), name="ok"))
    refused(["report", str(tmp_path / "ok"), "--out", bad(tmp_path)], capsys)
    shutil.move(tmp_path / "ok", bad(tmp_path))  # a run folder renamed by hand
    assert refused(["report", bad(tmp_path), "--out", str(tmp_path / "r")], capsys).startswith(
        "gimbench: error: FOLDER ")
    assert sorted(os.listdir(os.fsencode(tmp_path))) == [b"cmp\xff"]


@pytest.mark.slow
def test_a_real_compare_with_a_non_utf8_out_ends_in_one_line_at_once(tmp_path):
    out = os.fsencode(tmp_path) + b"/cmp\xff"
    done = subprocess.run([sys.executable, "-m", "gimbench", "compare", *TINY, "--out", out], capture_output=True,
                          env=ENV, timeout=120)
    err = done.stderr.decode()
    assert done.returncode == 2 and err.count("\n") == 1 and "not a UTF-8 name" in err, err
    assert os.listdir(os.fsencode(tmp_path)) == []
