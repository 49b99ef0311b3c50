"""One writer per run folder: a second command ends in one line naming the holder's pid; a stale lock is taken
over."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gimbench.cli import main
from gimbench.config import RunConfig
from gimbench.runs.folder import LOCK, FolderBusy, RunLock, holder
from gimbench.runs.run import run

TINY = dict(preset="tiny", device="cpu", model="gim", depth=2, batch_size=2, warmup_steps=1, profile_steps=1,
            memory_steps=0, probe=False, quiet=True)
HOLD = ("import sys, time; from gimbench.runs.folder import RunLock\n"
        "with RunLock(sys.argv[1]):\n print('held', flush=True)\n time.sleep(60)")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A completed 2-step run with checkpoints at steps 1 and 2 (copied per test)."""
    out = tmp_path_factory.mktemp("lock")
    run(RunConfig(**TINY, steps=2, checkpoint_every=1, out=str(out), name="done"))
    return out / "done"


@pytest.fixture
def folder(finished, tmp_path) -> Path:
    shutil.copytree(finished, tmp_path / "done")
    return tmp_path / "done"


def cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_a_second_command_on_a_held_folder_names_the_holder(folder, capsys):
    other = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "held\n" and holder(folder) == other.pid
        before = (folder / "results.json").read_text()
        for argv in (["run", "--resume", str(folder), "--steps", "4"], ["probe", str(folder)],
                     ["run", "--out", str(folder.parent), "--name", folder.name, "--overwrite", "--steps", "2"]):
            code, err = cli(argv, capsys)
            assert code == 2 and err.count("\n") == 1 and f"(pid {other.pid})" in err, err
        assert (folder / "results.json").read_text() == before
    finally:
        other.kill()
        other.wait()
    assert holder(folder) is None  # the kernel dropped the dead holder's lock


@pytest.mark.slow
def test_a_stale_lock_of_a_dead_process_is_taken_over(folder, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / LOCK).write_text(dead.stdout)
    assert holder(folder) is None
    assert cli(["run", "--resume", str(folder), "--steps", "3", "--quiet"], capsys)[0] == 0
    assert json.loads((folder / "results.json").read_text())["steps_completed"] == 3
    assert not (folder / LOCK).exists()


def test_the_lock_is_one_writer_even_within_a_process(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / LOCK).read_text() == f"{os.getpid()}\n"
        with pytest.raises(FolderBusy, match=f"pid {os.getpid()}"), RunLock(tmp_path):
            pass
    assert not (tmp_path / LOCK).exists()
