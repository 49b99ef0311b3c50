"""Probes at the end of a run, ``gimbench probe`` on a saved run, and ``gimbench table``.

These check what a probed run reads and writes, with probes capped at a few epochs (``short_probes``);
tests/test_probe.py checks what the probes learn."""

from __future__ import annotations

import json

import pytest
import torch
from test_cli import run_cli

from gimbench.cli import main
from gimbench.runs.table import METHODS

TASKS = {"audio": {"speaker", "phone"}, "vision": {"class"}}


def check_probe_block(probe: dict, modality: str, depth: int) -> None:
    assert set(probe) == TASKS[modality]
    for task, result in probe.items():
        assert len(result["per_module"]) == depth, task
        assert all(0.0 <= a <= 1.0 for a in result["per_module"])
        assert 0.0 < result["chance"] < 1.0
        assert result["train_examples"] > 0 and result["test_examples"] > 0 and result["epochs"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(("modality", "depth"), [("audio", 1), ("vision", 2)])  # audio's conv2 probe alone: ~20 s
def test_a_run_probes_every_module(tmp_path, capsys, modality, depth, short_probes):
    folder = run_cli(tmp_path, "--modality", modality, "--depth", str(depth), "--steps", "3", "--batch-size", "2",
                     "--probe")
    doc = json.loads((folder / "results.json").read_text())
    check_probe_block(doc["probe"], modality, depth=depth)
    out = capsys.readouterr().out
    assert "Linear probes" in out and "chance" in out


@pytest.mark.slow  # a probe run (tests/test_probe.py checks the probes in the fast set)
def test_probe_command_probes_a_saved_run_without_changing_it(tmp_path, capsys, short_probes):
    folder = run_cli(tmp_path, "--depth", "1", "--steps", "3", "--batch-size", "2")
    before = json.loads((folder / "results.json").read_text())
    assert before["probe"] == {}
    checkpoint = (folder / "checkpoint.pt").read_bytes()
    assert main(["probe", str(folder), "--device", "cpu", "--quiet"]) == 0
    after = json.loads((folder / "results.json").read_text())
    check_probe_block(after["probe"], "audio", depth=1)
    assert after["final_parameter_checksum"] == before["final_parameter_checksum"]
    assert (folder / "checkpoint.pt").read_bytes() == checkpoint
    assert "speaker" in capsys.readouterr().out


def test_probe_command_on_broken_folders_is_one_line(tmp_path, capsys):
    folder = run_cli(tmp_path, "--depth", "2", "--steps", "2", "--batch-size", "2")
    cases = {"missing": tmp_path / "nowhere"}
    results = folder / "results.json"
    cases["truncated results"] = folder
    results.write_text(results.read_text()[:100])
    for what, target in cases.items():
        assert main(["probe", str(target), "--device", "cpu"]) == 2, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "results.json" in err, what


def test_probe_command_on_a_truncated_checkpoint_is_one_line(tmp_path, capsys):
    folder = run_cli(tmp_path, "--depth", "2", "--steps", "2", "--batch-size", "2")
    checkpoint = folder / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    assert main(["probe", str(folder), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint.pt" in err and "Traceback" not in err


@pytest.mark.slow  # a probe run
def test_probe_command_reads_the_encoder_only(tmp_path, capsys, short_probes):
    folder = run_cli(tmp_path, "--depth", "1", "--steps", "2", "--batch-size", "2")
    path = folder / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    heads = [k for k in state["model"] if k.startswith("heads.") and k.endswith("_extra_state")]
    assert heads  # the InfoNCE heads' generator states, which older checkpoints lack
    for key in heads:
        del state["model"][key]
    torch.save(state, path)
    assert main(["probe", str(folder), "--device", "cpu", "--quiet"]) == 0
    del state["model"]["encoder.0.0.weight"]
    torch.save(state, path)
    assert main(["probe", str(folder), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match" in err and "encoder.0.0.weight" in err


@pytest.mark.slow  # a run and its probes for every method
def test_table_trains_every_method_and_writes_the_contract(tmp_path, capsys, short_probes):
    out = tmp_path / "table"
    code = main(["table", "--modality", "audio", "--preset", "tiny", "--device", "cpu", "--steps", "2",
                 "--depth", "1", "--batch-size", "2", "--warmup-steps", "1", "--quiet", "--out", str(out)])
    assert code == 0
    doc = json.loads((out / "table.json").read_text())
    assert doc["schema"] == "gimbench.table/1" and doc["modality"] == "audio"
    assert [row["method"] for row in doc["rows"]] == METHODS["audio"]
    for row in doc["rows"]:
        assert set(row["accuracy"]) == TASKS["audio"]
        assert (tmp_path / "table" / "runs" / row["method"] / "results.json").exists()
        assert row["run"].endswith(row["method"])
    assert doc["paper"]["gim"] == {"speaker": 99.4, "phone": 62.5}
    printed = capsys.readouterr().out
    assert "paper speaker" in printed and "greedy-supervised" in printed


@pytest.mark.parametrize("args,says", [
    (["--model", "gim"], "--model gim does not apply: gimbench table trains every method"),
    (["--no-probe"], "--no-probe does not apply: gimbench table probes every run"),
    (["--name", "mine"], "--name mine does not apply: gimbench table names each run after its method"),
    (["--nproc", "2"], "--nproc 2 does not apply: gimbench table trains every method in one process"),
    (["--gim-mode", "module-parallel"], "--gim-mode module-parallel does not apply"),
    (["--pipeline", "gpipe"], "--pipeline gpipe does not apply"),
])
def test_table_refuses_options_that_do_not_apply_with_one_line(tmp_path, capsys, args, says):
    assert main(["table", "--preset", "tiny", "--device", "cpu", "--quiet", "--out", str(tmp_path / "t"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gimbench: error: ") and says in err
    assert not (tmp_path / "t").exists()
