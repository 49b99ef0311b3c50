"""Options with no natural upper bound (``--batch-size``, ``--workers``) are refused where they cannot work, in one
line, before anything is allocated or forked; what still runs out of memory ends as a ``failed`` run."""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import sys
import time

import pytest
import torch

from gimbench.cli import main
from gimbench.config import RunConfig, max_workers, resolve, sample_bytes
from gimbench.data import loading
from gimbench.device import total_memory
from gimbench.models.presets import PRESETS
from gimbench.runs import checkpoint
from gimbench.runs.failures import RunEnded
from gimbench.runs.run import run

TINY = dict(preset="tiny", device="cpu", depth=2, batch_size=2, steps=2, warmup_steps=1, profile_steps=1,
            memory_steps=0, probe=False, quiet=True)
HUGE_BATCH = 1_000_000_000


def one_line_error(code: int, err: str, flag: str) -> bool:
    return code == 2 and err.count("\n") == 1 and err.startswith("gimbench: error: " + flag) and "Traceback" not in err


@pytest.mark.parametrize("modality", ["audio", "vision"])
def test_a_batch_larger_than_memory_is_refused_naming_the_flag_and_the_estimate(modality, capsys):
    code = main(["run", "--preset", "tiny", "--device", "cpu", "--modality", modality, "--no-probe", "--steps", "2",
                 "--batch-size", str(HUGE_BATCH)])
    err = capsys.readouterr().err
    assert one_line_error(code, err, "--batch-size 1,000,000,000") and " GiB " in err


def test_the_estimate_is_a_lower_bound_that_refuses_only_what_cannot_fit():
    data, first = sample_bytes(PRESETS["tiny"]["audio"], "audio", "tiny", known=True)
    assert data == 4 * PRESETS["tiny"]["audio"].crop_samples and first > data
    just_fits = total_memory("cpu") // (data + first)
    resolve(RunConfig(**TINY | {"batch_size": just_fits}))
    with pytest.raises(ValueError, match="--batch-size"):
        resolve(RunConfig(**TINY | {"batch_size": just_fits + 1}))


def test_too_many_workers_are_refused_before_any_fork(capsys):
    code = main(["run", "--preset", "tiny", "--device", "cpu", "--no-probe", "--steps", "2", "--workers", "500"])
    err = capsys.readouterr().err
    assert one_line_error(code, err, f"--workers must be at most {max_workers()}") and "per CPU core" in err


def recorded_run(tmp_path, **recorded) -> str:
    """A real run's folder whose checkpoint then records ``recorded`` options (as an edited or foreign one would)."""
    run(RunConfig(**TINY | {"out": str(tmp_path), "name": "run"}))
    folder = tmp_path / "run"
    state = torch.load(folder / checkpoint.LATEST, weights_only=True)
    state["config"] |= recorded
    checkpoint.save(folder, {k: v for k, v in state.items() if k != "format"})
    (folder / "results.json").unlink()  # results.json would record the other options
    return str(folder)


@pytest.mark.parametrize(("recorded", "flag"), [({"batch_size": HUGE_BATCH}, "--batch-size"),
                                                ({"workers": 500}, "--workers")])
def test_resuming_a_checkpoint_that_records_an_impossible_option_is_refused(tmp_path, capsys, recorded, flag):
    folder = recorded_run(tmp_path, **recorded)
    code = main(["run", "--resume", folder, "--steps", "4"])
    assert one_line_error(code, capsys.readouterr().err, flag)


def test_a_worker_that_cannot_start_ends_the_run_in_one_failure_line(tmp_path, monkeypatch, capsys):
    def refuse(_loader):
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(loading.DataLoader, "__iter__", refuse)
    code = main(["run", "--preset", "tiny", "--device", "cpu", "--depth", "2", "--batch-size", "2", "--steps", "2",
                 "--no-probe", "--quiet", "--workers", "2", "--out", str(tmp_path), "--name", "run"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("gimbench: failed: cannot start 2 data worker")
    assert "--workers" in err and "Traceback" not in err
    failure = json.loads((tmp_path / "run" / "results.json").read_text())["failure"]
    assert failure["reason"] == "workers-failed" and failure["step"] == 0


def test_memory_running_out_while_drawing_a_batch_is_an_out_of_memory_failure(tmp_path, monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError

    cfg = RunConfig(**TINY | {"out": str(tmp_path), "name": "run"})
    monkeypatch.setattr(loading._Batches, "__iter__", exhausted)
    with pytest.raises(RunEnded) as ended:
        run(cfg)
    assert ended.value.exit_code == 1 and "\n" not in str(ended.value)
    assert str(ended.value).startswith("out of memory outside the modules' phases (drawing or moving the batch)")
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["status"] == "failed" and doc["failure"]["reason"] == "out-of-memory"


# The child's address space: it fails loudly, not the machine, if the refusal ever regresses (torch's import
# alone maps about 3 GiB of it, so a tighter guard ends the child in a MemoryError before gimbench runs).
GUARD_BYTES = 6 * 2**30
GUARD_SECONDS = 120  # and its CPU time


def _guard() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (GUARD_BYTES, GUARD_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (GUARD_SECONDS, GUARD_SECONDS))


@pytest.mark.slow
@pytest.mark.parametrize("option", [["--batch-size", str(HUGE_BATCH)], ["--workers", "500"]])
def test_the_real_command_ends_within_seconds_in_one_line_and_small(tmp_path, option):
    command = [sys.executable, "-m", "gimbench", "run", "--preset", "tiny", "--no-probe", "--steps", "2",
               "--out", str(tmp_path / "runs"), *option]
    started = time.monotonic()
    with open(tmp_path / "stderr", "w") as err:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_guard)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest of all children so far
    stderr = (tmp_path / "stderr").read_text()
    assert os.waitstatus_to_exitcode(status) == 2 and stderr.count("\n") == 1
    assert stderr.startswith("gimbench: error: " + option[0]) and not (tmp_path / "runs").exists()
    assert usage.ru_maxrss * 1024 < 2**30  # ru_maxrss is in KiB on Linux
    assert time.monotonic() - started < 60  # imports alone take seconds on a loaded machine
