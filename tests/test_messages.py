"""Messages that said the wrong thing or took two lines (issue 28, defect 10): a dataset error is one line (the
layout is ``data check``'s), ``probe`` names a damaged ``steps_completed`` and a directory in place of
``checkpoint.pt``, and a live sweep's report tells its running run from an interrupted one."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest
from test_sweep_signals import start, wait_for

from gimbench.cli import main
from gimbench.config import RunConfig
from gimbench.runs.run import run

TINY = dict(preset="tiny", device="cpu", model="gim", depth=2, batch_size=2, warmup_steps=1, profile_steps=1,
            memory_steps=0, probe=False, quiet=True)


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


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("messages")
    run(RunConfig(**TINY, steps=2, checkpoint_every=1, out=str(out), name="done"))
    return out / "done"


@pytest.fixture
def folder(finished, tmp_path) -> Path:
    shutil.copytree(finished, tmp_path / "done")
    return tmp_path / "done"


def test_probe_names_a_steps_completed_that_is_not_a_number(folder, capsys):
    doc = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps(doc | {"steps_completed": "2"}))
    err = one_line(["probe", str(folder)], capsys)
    assert "results.json is damaged: its steps_completed is '2' (str), not a whole number" in err
    assert "holds step" not in err


def test_probe_says_a_directory_as_checkpoint_is_not_a_file(folder, capsys):
    (folder / "checkpoint.pt").unlink()
    (folder / "checkpoint.pt").mkdir()
    err = one_line(["probe", str(folder)], capsys)
    assert f"{folder}/checkpoint.pt is not a file (a directory?); checkpoint.prev.pt exists" in err


@pytest.mark.slow
def test_a_live_sweeps_report_counts_its_run_as_running_then_interrupted(tmp_path, capsys):
    folder = tmp_path / "s"
    sweep = start(folder)
    try:
        wait_for(folder / "runs" / "001-depth1" / "checkpoint.pt", sweep)
        assert main(["report", str(folder), "--out", str(tmp_path / "r1")]) == 0
        note = " ".join(capsys.readouterr().out.split())
        assert "(running): 1 runs, 0 failed, 1 running;" in note, note
    finally:
        sweep.send_signal(signal.SIGTERM)
        sweep.communicate(timeout=120)
    assert main(["report", str(folder), "--out", str(tmp_path / "r2")]) == 0
    assert "(interrupted): 1 runs, 0 failed, 1 interrupted;" in " ".join(capsys.readouterr().out.split())
