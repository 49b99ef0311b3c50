"""Messages that said the wrong thing or took two lines (issue 28, defect 10): a dataset error is one line (the
layout is ``data check``'s), ``probe`` names a damaged ``steps_completed`` and a directory in place of
``checkpoint.pt``, and a live sweep's report tells its running run from an interrupted one."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import test_run_lock
from test_sweep_signals import ENV, SWEEP, wait_for

from gimbench.cli import main
from gimbench.runs.folder import holder

finished = test_run_lock.finished  # fixture: a completed 2-step run, results.json and both checkpoints
folder = test_run_lock.folder  # fixture: a copy of it for one test


def one_line(argv: list[str], capsys) -> str:
    """Run ``gimbench argv``; assert it ended in one ``gimbench: error:`` line with exit 2; return the line."""
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("gimbench: error: "), err
    return err


@pytest.mark.parametrize("data,modality,said", [("stl10", "vision", "no stl10_binary/ folder"),
                                                ("librispeech", "audio", "is not a folder")])
def test_a_dataset_error_is_one_line_pointing_to_data_check(tmp_path, capsys, data, modality, said):
    root = tmp_path / "data" if data == "librispeech" else tmp_path
    err = one_line(["run", "--data", data, "--data-root", str(root), "--modality", modality, "--preset", "tiny",
                    "--device", "cpu", "--out", str(tmp_path / "runs")], capsys)
    assert said in err and f"gimbench data check --data {data} --data-root PATH shows the expected layout" in err


def test_probe_names_a_steps_completed_that_is_not_a_number(folder, capsys):
    doc = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps(doc | {"steps_completed": "2"}))
    err = one_line(["probe", str(folder)], capsys)
    assert "results.json: steps_completed is '2', not a count" in err and "damaged" in err
    assert "holds step" not in err


def test_probe_says_a_directory_as_checkpoint_is_not_a_file(folder, capsys):
    (folder / "checkpoint.pt").unlink()
    (folder / "checkpoint.pt").mkdir()
    err = one_line(["probe", str(folder)], capsys)
    assert f"{folder}/checkpoint.pt is not a file (a directory?); checkpoint.prev.pt exists" in err


@pytest.mark.slow
def test_a_live_sweeps_report_counts_its_run_as_running_then_interrupted(tmp_path, capsys):
    sweep_folder = tmp_path / "s"
    steps = SWEEP.index("--steps") + 1  # long enough that the signal finds its first run still training
    command = [*SWEEP[:steps], "2000", *SWEEP[steps + 1:], "--out", str(sweep_folder)]
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                             start_new_session=True)
    try:
        wait_for(sweep_folder / "runs" / "001-depth1" / "checkpoint.pt", sweep)
        assert main(["report", str(sweep_folder), "--out", str(tmp_path / "r1")]) == 0
        note = " ".join(capsys.readouterr().out.split())
        assert "(running): 1 runs, 0 failed, 1 running;" in note, note
    finally:
        sweep.send_signal(signal.SIGTERM)
        sweep.communicate(timeout=120)
    run = sweep_folder / "runs" / "001-depth1"
    deadline = time.monotonic() + 60  # the run's own process may outlive the sweep by a moment: wait for its lock
    while holder(run) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert main(["report", str(sweep_folder), "--out", str(tmp_path / "r2")]) == 0
    assert "(interrupted): 1 runs, 0 failed, 1 interrupted;" in " ".join(capsys.readouterr().out.split())
