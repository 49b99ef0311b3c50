"""A full disk, a read-only folder or a directory in the way: a failed run with one line, the last good files
kept, no temp file left. In-process tests make ``open`` refuse; the tmpfs tests (root only) use a real one."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gimbench.cli import main
from gimbench.config import RunConfig
from gimbench.results import atomic
from gimbench.results.atomic import WriteError, write_atomic
from gimbench.runs.failures import RunEnded
from gimbench.runs.resume import resume
from gimbench.runs.run import run

TINY = dict(preset="tiny", device="cpu", model="gim", depth=2, batch_size=2, warmup_steps=1, profile_steps=1,
            memory_steps=0, probe=False, quiet=True)
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def refuse(monkeypatch, code: int, when) -> None:
    """Make the atomic writes whose target name satisfies ``when(name, count)`` fail with ``code`` as the
    system would: the temp file is created, the data is refused (``count`` is how many such writes came before)."""
    real, calls = open, {}

    class Refusing:
        def __init__(self, f) -> None:
            self.f = f

        def write(self, data) -> int:
            raise OSError(code, os.strerror(code))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.f.close()

    def patched(path, mode="r", *args, **kwargs):
        f = real(path, mode, *args, **kwargs)
        name = Path(path).name[1:-4]  # .<name>.tmp
        calls[name] = calls.get(name, 0) + 1
        return Refusing(f) if when(name, calls[name] - 1) else f

    monkeypatch.setattr(atomic, "open", patched, raising=False)


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name == ".gimbench.lock")


def cfg(tmp_path: Path, **options) -> RunConfig:
    return RunConfig(**(TINY | {"out": str(tmp_path), "name": "run"} | options))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_refused_atomic_write_keeps_the_old_file_and_no_temp_file(tmp_path, monkeypatch, code):
    path = tmp_path / "results.json"
    path.write_text("old")
    refuse(monkeypatch, code, lambda name, count: True)
    monkeypatch.setattr(Path, "unlink", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EROFS, "read-only")))
    with pytest.raises(WriteError) as refused:
        write_atomic(path, lambda f: f.write(b"new"))
    assert str(refused.value) == f"cannot write {path}: {os.strerror(code)}" and refused.value.errno == code
    assert path.read_text() == "old"


def test_a_directory_in_the_way_is_a_write_error(tmp_path):
    (tmp_path / "checkpoint.pt").mkdir()
    with pytest.raises(WriteError, match="checkpoint.pt: a directory is in the way"):
        write_atomic(tmp_path / "checkpoint.pt", lambda f: f.write(b"x"))
    assert temp_files(tmp_path) == []


def test_a_full_disk_at_a_periodic_checkpoint_fails_the_run_and_keeps_the_one_before(tmp_path, monkeypatch):
    refuse(monkeypatch, errno.ENOSPC, lambda name, count: name == "checkpoint.pt" and count >= 1)
    with pytest.raises(RunEnded) as ended:
        run(cfg(tmp_path, steps=6, checkpoint_every=2))
    folder, message = tmp_path / "run", str(ended.value)
    assert ended.value.exit_code == 1 and "\n" not in message
    assert message.startswith(f"cannot write {folder}/checkpoint.pt: No space left on device (after step 4)")
    assert f"the last good checkpoint is {folder}/checkpoint.pt (step 2)" in message
    doc = json.loads((folder / "results.json").read_text())
    assert doc["status"] == "failed" and doc["failure"]["reason"] == "write-failed"
    assert doc["failure"]["checkpoint_step"] == 2 and doc["resume_command"].endswith(str(folder))
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["step"] == 2
    assert temp_files(folder) == []


@pytest.mark.slow  # two real runs: ~6 s
def test_a_full_disk_for_results_json_says_where_the_last_good_state_is(tmp_path, monkeypatch, capsys):
    refuse(monkeypatch, errno.ENOSPC, lambda name, count: name == "results.json")
    argv = ["run", "--preset", "tiny", "--device", "cpu", "--depth", "2", "--batch-size", "2", "--steps", "3",
            "--no-probe", "--quiet", "--out", str(tmp_path), "--name", "run"]
    assert main(argv) == 1
    err, folder = capsys.readouterr().err, tmp_path / "run"
    assert err.count("\n") == 1 and err.startswith(f"gimbench: failed: cannot write {folder}/results.json: No space")
    assert f"the last good checkpoint is {folder}/checkpoint.pt (step 3)" in err and "resume with:" in err
    assert not (folder / "results.json").exists() and temp_files(folder) == []
    monkeypatch.undo()  # space freed: the resume writes what could not be written
    assert resume(folder).status == "complete"
    assert json.loads((folder / "results.json").read_text())["steps_completed"] == 3


def test_a_directory_as_checkpoint_is_refused_before_training(tmp_path, capsys):
    run(cfg(tmp_path, steps=2, checkpoint_every=1))
    folder = tmp_path / "run"
    (folder / "checkpoint.pt").unlink()
    (folder / "checkpoint.pt").mkdir()
    assert main(["run", "--resume", str(folder), "--steps", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{folder}/checkpoint.pt is not a file" in err
    assert json.loads((folder / "results.json").read_text())["steps_completed"] == 2


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs (root only; CI runs as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()}); the in-process tests cover it")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def gimbench(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gimbench", *argv], capture_output=True, text=True, env=ENV,
                          timeout=300)


RUN = ["run", "--preset", "tiny", "--device", "cpu", "--memory-steps", "0", "--depth", "2", "--batch-size", "2",
       "--steps", "12", "--checkpoint-every", "4", "--no-probe", "--quiet"]


@pytest.mark.slow
def test_a_real_full_disk_mid_run_then_resume_once_freed(tmpfs):
    filler = tmpfs / "filler"
    free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
    filler.write_bytes(b"\0" * (free - 640 * 1024))  # room for one ~420 KB checkpoint, not for the next beside it
    done = gimbench(*RUN, "--out", str(tmpfs), "--name", "run")
    folder = tmpfs / "run"
    assert done.returncode == 1 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"gimbench: failed: cannot write {folder}/checkpoint.pt: No space left on device")
    doc = json.loads((folder / "results.json").read_text())
    assert "(after step 8); the last good checkpoint is" in done.stderr and "(step 4)" in done.stderr
    assert doc["status"] == "failed" and doc["failure"]["checkpoint_step"] == 4 and temp_files(folder) == []
    filler.unlink()
    resumed = gimbench("run", "--resume", str(folder), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((folder / "results.json").read_text())["steps_completed"] == 12


@pytest.mark.slow
def test_a_read_only_folder_is_one_line_for_resume_probe_and_report(tmpfs):
    run(cfg(tmpfs, steps=2, checkpoint_every=1))  # in this process: only what follows needs a process of its own
    folder, before = tmpfs / "run", (tmpfs / "run" / "results.json").read_text()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    for argv, what in ((["run", "--resume", str(folder), "--steps", "4"], ".gimbench.lock"),
                       (["probe", str(folder)], ".gimbench.lock"),
                       (["report", str(folder), "--out", str(tmpfs / "r")], "r")):
        out = gimbench(*argv)
        assert out.returncode == 1 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr.startswith("gimbench: failed: cannot write ") and "Read-only file system" in out.stderr
        assert f"{what}: Read-only" in out.stderr
    assert (folder / "results.json").read_text() == before
