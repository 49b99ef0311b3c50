"""Reliability: exact resume, interrupts, NaN and out-of-memory failures, damaged files, hostile options."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gimbench.cli import config_from_args, main, make_parser
from gimbench.config import ConfigError, RunConfig
from gimbench.results.schema import write_json_atomic
from gimbench.runs.failures import RunEnded
from gimbench.runs.folder import check_name
from gimbench.runs.resume import resume
from gimbench.runs.run import resolve_config, run

BUILD_MODULE = sys.modules["gimbench.runs.build"]  # where every run builds its network

TINY = dict(preset="tiny", device="cpu", depth=2, batch_size=2, warmup_steps=1, profile_steps=1, memory_steps=0,
            probe=False, quiet=True)
CASES = {"cpc": dict(model="cpc"), "gim-per-module": dict(model="gim", gim_mode="per-module"),
         "gim-sequential": dict(model="gim", gim_mode="sequential"),
         # each --optimizer's state (SGD's momentum, AdamW's moments) through the checkpoint; bf16 autocast
         "gim-sgd-bf16": dict(model="gim", optimizer="sgd", precision="bf16"), "cpc-adamw": dict(model="cpc",
                                                                                                 optimizer="adamw")}
N = 2  # a run of 2N steps is compared with one interrupted (or ended) after N and resumed


def config(tmp_path: Path, name: str, case: str, steps: int, **options) -> RunConfig:
    return RunConfig(**(TINY | CASES[case] | {"steps": steps, "out": str(tmp_path), "name": name} | options))


def losses(result) -> list:
    return [m.loss["history"] for m in result.modules]


def sigint_at(step: int):
    """An on_step callback that sends this process SIGINT once ``step`` is done."""
    return lambda record: os.kill(os.getpid(), signal.SIGINT) if record.step == step else None


# Each case is 4 runs of seconds: the fast set resumes both greedy schedules through the same checkpoint code, the
# rest (cpc, the other optimizers' state, bf16) run in the full suite.
FAST_RESUMES = ("gim-per-module", "gim-sequential")


@pytest.mark.parametrize("case", [c if c in FAST_RESUMES else pytest.param(c, marks=pytest.mark.slow) for c in CASES])
def test_resumed_runs_end_with_the_same_parameters(tmp_path, case):
    whole = run(config(tmp_path, "whole", case, 2 * N))
    with pytest.raises(RunEnded) as ended:
        run(config(tmp_path, "parts", case, 2 * N), on_step=sigint_at(N - 1))
    assert ended.value.exit_code == 130 and ended.value.result.status == "interrupted"
    doc = json.loads((tmp_path / "parts" / "results.json").read_text())
    assert doc["status"] == "interrupted" and doc["steps_completed"] == N and "--resume" in doc["resume_command"]
    resumed = resume(tmp_path / "parts")
    assert resumed.final_parameter_checksum == whole.final_parameter_checksum
    assert losses(resumed) == losses(whole)
    assert [(s["start_step"], s["end_step"]) for s in resumed.sessions] == [(0, N), (N, 2 * N)]
    if case != "gim-sequential":  # its shares are cut from the steps a run began with (see the next test)
        run(config(tmp_path, "short", case, N))
        extended = resume(tmp_path / "short", steps=2 * N)
        assert extended.final_parameter_checksum == whole.final_parameter_checksum and extended.status == "complete"


def test_sequential_extension_trains_the_top_module(tmp_path):
    run(config(tmp_path, "short", "gim-sequential", 2))
    extended = resume(tmp_path / "short", steps=4)
    first, top = losses(extended)
    assert first[2:] == [None, None] and None not in top[2:]


@pytest.mark.slow  # several real runs: ~4 s
def test_checkpoints_are_atomic_and_the_last_two_are_kept(tmp_path):
    run(config(tmp_path, "run", "gim-per-module", 5, checkpoint_every=2, memory_steps=1))
    folder = tmp_path / "run"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt", "memory-timeline.csv",
                                                        "memory-timeline.png", "results.json"]
    latest, previous = (torch.load(folder / n, weights_only=True) for n in ("checkpoint.pt", "checkpoint.prev.pt"))
    assert (latest["step"], previous["step"]) == (5, 4)
    assert set(latest["rng"]) == {"torch", "cuda", "numpy", "python", "data"} and len(latest["history"]["losses"]) == 5


def wait_for(path, process, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigint_mid_run_leaves_a_resumable_run(tmp_path, capsys):
    folder = tmp_path / "run"
    command = [sys.executable, "-m", "gimbench", "run", "--preset", "tiny", "--device", "cpu", "--depth", "2",
               "--batch-size", "2", "--steps", "100000", "--checkpoint-every", "2", "--no-probe",
               "--out", str(tmp_path), "--name", "run"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(folder / "checkpoint.pt", process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and f"resume with: gimbench run --resume {folder}" in err

    doc = json.loads((folder / "results.json").read_text())
    done = doc["steps_completed"]
    assert doc["status"] == "interrupted" and doc["failure"]["signal"] == "SIGINT" and done >= 2
    assert len(doc["modules"][0]["loss"]["history"]) == done
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["step"] == done

    assert main(["run", "--resume", str(folder), "--steps", str(done + 2), "--quiet"]) == 0
    doc = json.loads((folder / "results.json").read_text())
    assert doc["status"] == "complete" and doc["steps_completed"] == done + 2 and len(doc["sessions"]) == 2


def poison(monkeypatch, module: int, from_call: int, effect):
    """Make encoder module ``module`` call ``effect(output)`` from its ``from_call``-th forward on."""
    build = BUILD_MODULE.network_for
    calls = [0]

    def hook(_module, _inputs, output):
        calls[0] += 1
        return effect(output) if calls[0] > from_call else output

    def network_for(*args, **kwargs):
        network = build(*args, **kwargs)
        network.encoder[module].register_forward_hook(hook)
        return network

    monkeypatch.setattr(BUILD_MODULE, "network_for", network_for)


def test_nan_loss_fails_naming_module_and_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    poison(monkeypatch, module=1, from_call=2, effect=lambda out: out * float("nan"))
    with pytest.raises(RunEnded) as ended:
        run(config(tmp_path, "run", "gim-per-module", 6, checkpoint_every=1))
    failure = ended.value.result.failure
    assert ended.value.exit_code == 1 and failure["reason"] == "non-finite-loss"
    assert (failure["module"], failure["step"], failure["loss"]) == (1, 2, "nan")
    # The message counts steps from 1, as the progress bar does: steps 1-2 were fine, step 3 gave the NaN.
    assert "module 1 (gru) is nan at step 3;" in str(ended.value) and "step 2) is kept" in str(ended.value)
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["status"] == "failed" and doc["steps_completed"] == 2
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 2


def test_diverging_lr_fails_on_the_command_line(tmp_path, capsys):
    code = main(["run", "--preset", "tiny", "--device", "cpu", "--depth", "2", "--batch-size", "2", "--steps", "3",
                 "--lr", "1e30", "--no-probe", "--quiet", "--out", str(tmp_path), "--name", "run"])
    err = capsys.readouterr().err
    assert code == 1 and "failed: loss of module 0 (conv1) is nan" in err and "Traceback" not in err
    assert json.loads((tmp_path / "run" / "results.json").read_text())["failure"]["module"] == 0


@pytest.mark.slow  # several real runs: ~4 s
def test_out_of_memory_names_module_phase_and_memory_so_far(tmp_path, monkeypatch):
    def oom(_output):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    # Module 1's forwards: 1 warm-up, 2 memory step, 3 the floor (the top module trained alone), 4 step 2.
    poison(monkeypatch, module=1, from_call=3, effect=oom)
    with pytest.raises(RunEnded) as ended:
        run(config(tmp_path, "run", "gim-per-module", 6, memory_steps=1))
    message, doc = str(ended.value), json.loads((tmp_path / "run" / "results.json").read_text())
    assert "module 1 (gru), phase forward at step 3" in message and "MiB over 1 memory-tracked steps" in message
    assert "--find-max-batch" in message and "--batch-size" in message
    assert doc["status"] == "failed" and doc["failure"]["reason"] == "out-of-memory"
    assert doc["failure"]["phase"] == "forward" and doc["step"]["peak_memory_bytes"] > 0


@pytest.mark.slow  # several real runs: ~4 s
def test_out_of_memory_while_measuring_the_floor_leaves_the_run_going(tmp_path, monkeypatch):
    def oom(_output):
        raise torch.OutOfMemoryError("CPU out of memory")

    calls = [0]

    def once(output):  # only the third forward of module 1: training it alone for the floor
        calls[0] += 1
        return oom(output) if calls[0] == 1 else output

    poison(monkeypatch, module=1, from_call=2, effect=once)
    result = run(config(tmp_path, "run", "gim-per-module", 4, memory_steps=1))
    memory = result.step.memory
    assert result.status == "complete" and memory["floor_bytes"] is None and memory["peak_over_floor"] is None
    assert memory["floor_note"].startswith("not measured: out of memory") and memory["peak_memory_bytes"] > 0


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status of ``gimbench ARGV`` (argparse's SystemExit included) and its stderr."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str) -> bool:
    return code == 2 and err.count("\n") == 1 and err.startswith("gimbench: error:") and "Traceback" not in err


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory) -> Path:
    """A completed 2-step run with checkpoints at steps 1 and 2, made once for this file."""
    out = tmp_path_factory.mktemp("finished")
    run(config(out, "done", "gim-per-module", 2, checkpoint_every=1))
    return out / "done"


@pytest.fixture
def finished(finished_once, tmp_path) -> Path:
    """A fresh copy of the completed run, for a test to damage or extend."""
    return Path(shutil.copytree(finished_once, tmp_path / "done"))


def test_truncated_checkpoint_is_a_clear_error(finished, capsys):
    path = finished / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for argv in (["run", "--resume", str(finished), "--steps", "4"], ["probe", str(finished)]):
        code, err = cli(argv, capsys)
        assert one_line_error(code, err) and "damaged" in err and "checkpoint.prev.pt" in err


def test_truncated_results_is_a_clear_error(finished, capsys):
    path = finished / "results.json"
    path.write_text(path.read_text()[:100])
    for argv in (["run", "--resume", str(finished), "--steps", "4"], ["probe", str(finished)]):
        code, err = cli(argv, capsys)
        assert one_line_error(code, err) and "not valid JSON" in err


def resume_cases(folder: Path, other: Path) -> list[tuple[list[str], str]]:
    return [
        (["--resume", str(folder)], "complete at 2 steps"),
        (["--resume", str(folder), "--steps", "1"], "less than the 2 steps"),
        (["--resume", str(folder), "--lr", "0.1"], "--lr cannot be changed"),
        (["--resume", str(other / "missing")], "no such directory"),
        (["--resume", str(other)], "has no checkpoint"),
    ]


BAD_VALUES = [
    (["--steps", "0"], "--steps"), (["--steps", "10000001"], "--steps"), (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"), (["--lr", "-1"], "--lr"), (["--lr", "1e300"], "--lr"), (["--seed", "-1"], "--seed"),
    (["--seed", str(2**64)], "--seed"), (["--checkpoint-every", "-1"], "--checkpoint-every"),
    (["--name", ".."], "--name"), (["--name", "a/b"], "--name"), (["--out", "a\0b"], "--out"),
    (["--steps", "9" * 5000], "--steps"),
]


@pytest.mark.parametrize("args,flag", BAD_VALUES)
def test_bad_values_are_one_line_errors(tmp_path, capsys, args, flag):
    code, err = cli(["run", "--quiet", "--device", "cpu", "--out", str(tmp_path), *args], capsys)
    assert one_line_error(code, err) and flag in err


def test_bad_resumes_are_one_line_errors(finished, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for args, expected in resume_cases(finished, tmp_path / "empty"):
        code, err = cli(["run", *args], capsys)
        assert one_line_error(code, err) and expected in err, (args, err)


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("precious")
    code, err = cli(["run", "--quiet", "--device", "cpu", "--out", str(tmp_path), "--name", "notes", "--overwrite"],
                    capsys)
    assert one_line_error(code, err) and (tmp_path / "notes" / "thesis.tex").read_text() == "precious"


VALUE_FLAGS = ["--model", "--modality", "--depth", "--preset", "--gim-mode", "--context", "--steps", "--warmup-steps",
               "--profile-steps", "--memory-steps", "--batch-size", "--lr", "--seed", "--device", "--data",
               "--data-root", "--name", "--checkpoint-every"]
SWITCHES = ["--overwrite", "--quiet", "--no-probe"]
VALUES = st.one_of(
    st.text(max_size=12), st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "0", "1", "3", "-1", "nan", "inf", "1e999", "auto", "cpu", "cuda", "tiny", "paper", "gim",
                     "cpc", "mfcc", "vision", "audio", "sequential", "pixelcnn", "synthetic", "../x", "a\0b"]),
)


def parse_and_resolve(argv: list[str]) -> RunConfig:
    """What ``gimbench run ARGV`` does before it creates anything: parse, check, resolve, check the name."""
    cfg = resolve_config(config_from_args(make_parser().parse_args(["run", *argv])))
    if cfg.name is not None:
        check_name(cfg.name)
    return cfg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=st.lists(st.tuples(st.sampled_from(VALUE_FLAGS), VALUES), max_size=6),
       switches=st.lists(st.sampled_from(SWITCHES), max_size=2))
def test_any_option_values_give_a_config_or_one_line_error(options, switches):
    argv = [part for flag, value in options for part in (flag, value)] + switches
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            cfg = parse_and_resolve(argv)
    except SystemExit as e:
        assert e.code == 2 and stderr.getvalue().count("\n") == 1
    except ConfigError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert isinstance(cfg, RunConfig) and cfg.device in ("cpu", "cuda") and cfg.steps > 0


def test_results_file_is_as_readable_as_any_new_file(tmp_path):
    """The atomic write's temp file is owner-only; the file it becomes gets the usual permissions."""
    mask = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "results.json", {"schema": "x"})
    finally:
        os.umask(mask)
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o644
    assert json.loads((tmp_path / "results.json").read_text()) == {"schema": "x"}


def test_probe_refuses_a_checkpoint_results_json_does_not_describe(finished, capsys):
    folder = finished
    before = (folder / "results.json").read_text()
    (folder / "checkpoint.pt").unlink()
    code, err = cli(["probe", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1 and "checkpoint.pt does not exist" in err and "--checkpoint prev" in err
    shutil.copy(folder / "checkpoint.prev.pt", folder / "checkpoint.pt")  # step 1, results.json says 2
    code, err = cli(["probe", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1 and "holds step 1 but results.json describes step 2" in err
    assert (folder / "results.json").read_text() == before


@pytest.mark.slow  # a probe of a depth-2 audio run (probes capped: what is recorded matters here, not accuracy)
def test_probe_of_the_previous_checkpoint_on_purpose_is_recorded(finished, short_probes):
    folder = finished
    assert main(["probe", str(folder), "--checkpoint", "prev", "--quiet"]) == 0
    doc = json.loads((folder / "results.json").read_text())
    assert doc["probe_checkpoint"] == {"file": "checkpoint.prev.pt", "step": 1} and doc["probe"]
    assert doc["steps_completed"] == 2  # what the run did; probe_checkpoint says what was probed


def test_report_refuses_a_malformed_config_in_one_line(finished, tmp_path, capsys):
    folder = finished
    doc = json.loads((folder / "results.json").read_text())
    (folder / "results.json").write_text(json.dumps(doc | {"config": 5}))
    code, err = cli(["report", str(folder), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and err.count("\n") == 1 and "results.json: config is 5, not an object" in err


def test_with_no_timed_step_step_times_are_null_and_say_why(tmp_path, capsys):
    argv = ["run", "--preset", "tiny", "--device", "cpu", "--depth", "1", "--batch-size", "2", "--steps", "3",
            "--warmup-steps", "1000", "--no-probe", "--quiet", "--out", str(tmp_path), "--name", "warm"]
    assert main(argv) == 0
    step = json.loads((tmp_path / "warm" / "results.json").read_text())["step"]
    assert step["time_ms"] is None and step["samples_per_second"] is None and step["time_ms_iqr"] is None
    assert step["time_note"] == "no step was timed: the 3 steps run were all warm-up or memory-tracked"
    assert "step: no time (no step was timed" in capsys.readouterr().out
    with pytest.raises(RunEnded) as ended:
        run(config(tmp_path, "nan", "gim-per-module", 3, lr=1e30))
    assert "is nan at step 2;" in str(ended.value)  # step 1 (warm-up) diverged, step 2 is the first NaN
    failed = json.loads((tmp_path / "nan" / "results.json").read_text())["step"]
    assert failed["time_ms"] is None and failed["samples_per_second"] is None and failed["time_note"]
