"""The command line: a smoke run over every registered name, the results contract, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gimbench
from gimbench.cli import main
from gimbench.config import DEFAULT_STEPS, RunConfig
from gimbench.distributed.engine import ENGINES
from gimbench.models import MODALITIES, NETWORKS
from gimbench.runs.run import resolve_config
from gimbench.strategies import STRATEGIES

GIM_MODES = list(STRATEGIES["gim"].variants)
SINGLE_PROCESS_MODES = [g for g in GIM_MODES if g != "module-parallel"]  # that one: tests/test_module_parallel.py
RUNS = [(m, mod, g) for m in sorted(STRATEGIES) for mod in MODALITIES
        for g in (SINGLE_PROCESS_MODES if m == "gim" else ("per-module",)) if (m, mod) != ("mfcc", "vision")]


def run_cli(tmp_path: Path, *args: str) -> Path:
    probe = [] if "--probe" in args else ["--no-probe"]
    args = tuple(a for a in args if a != "--probe")
    # No memory-tracked steps unless asked: tracking costs ~8x a tiny run, and no test here reads its figures.
    code = main(["run", "--preset", "tiny", "--device", "cpu", "--quiet", "--warmup-steps", "1", "--memory-steps", "0",
                 "--out", str(tmp_path), "--name", "run", *probe, *args])
    assert code == 0
    return tmp_path / "run"


def check_contract(doc: dict, depth: int) -> None:
    assert doc["schema"] == "gimbench.run/1" and doc["status"] == "complete"
    for key in ("model", "modality", "depth", "preset", "gim_mode", "steps", "batch_size", "lr", "seed", "device"):
        assert key in doc["config"]
    for key in ("torch", "cuda", "device", "device_name", "git_commit", "python"):
        assert key in doc["environment"]
    assert [m["index"] for m in doc["modules"]] == list(range(depth))
    for m in doc["modules"]:
        assert isinstance(m["name"], str) and m["parameters"] >= (0 if doc["config"]["model"] == "mfcc" else 1)
        assert set(m["loss"]) >= {"first", "last"}
    assert doc["step"]["time_ms"] > 0 and doc["step"]["samples_per_second"] > 0
    assert len(doc["final_parameter_checksum"]) == 64


# Which modules report a training loss, per model, at depth 2 (mfcc has one module).
LOSSES = {"cpc": [False, True], "supervised": [False, True], "gim": [True, True], "greedy-supervised": [True, True],
          "random": [False, False], "mfcc": [False]}


@pytest.mark.parametrize("model,modality,mode", RUNS)
def test_smoke_run_writes_the_results_contract(tmp_path, model, modality, mode):
    depth = 1 if model == "mfcc" else 2
    folder = run_cli(tmp_path, "--model", model, "--modality", modality, "--gim-mode", mode, "--depth", str(depth),
                     "--steps", "4", "--batch-size", "2")
    doc = json.loads((folder / "results.json").read_text())
    check_contract(doc, depth=depth)
    assert doc["config"]["model"] == model and doc["config"]["preset"] == "tiny"
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and len(state["optimizers"]) == depth and state["config"]["model"] == model
    assert model == "mfcc" or any(name.startswith("encoder.1.") for name in state["model"])
    assert [m["loss"]["last"] is not None for m in doc["modules"]] == LOSSES[model]


@pytest.mark.slow  # three real runs: ~8 s
def test_same_seed_same_checksum_and_different_seed_differs(tmp_path):
    def checksum(folder: str, *seed: str) -> str:
        folder_path = run_cli(tmp_path / folder, "--steps", "3", "--depth", "2", "--batch-size", "2", *seed)
        doc = json.loads((folder_path / "results.json").read_text())
        return doc["final_parameter_checksum"]

    a, b, c = checksum("a"), checksum("b"), checksum("c", "--seed", "1")
    assert a == b != c


@pytest.mark.parametrize("modality", MODALITIES)
def test_steps_default_to_the_modalitys_budget_and_the_flag_wins(modality, capsys):
    assert resolve_config(RunConfig(modality=modality, preset="tiny", device="cpu")).steps == DEFAULT_STEPS[modality]
    assert resolve_config(RunConfig(modality=modality, preset="tiny", device="cpu", steps=7)).steps == 7
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert f"{DEFAULT_STEPS[modality]} {modality}" in " ".join(capsys.readouterr().out.split())


def test_default_run_folder_name_and_no_silent_overwrite(tmp_path, capsys):
    args = ["run", "--quiet", "--steps", "2", "--depth", "2", "--batch-size", "2", "--memory-steps", "0", "--device",
            "cpu", "--no-probe", "--out", str(tmp_path)]
    assert main(args) == 0 and main(args) == 0
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and all("-gim-audio-d2" in f for f in folders)


BAD = [
    (["--model", "nope"], "--model"),
    (["--depth", "0"], "--depth"),
    (["--depth", "99"], "--depth"),
    (["--steps", "-3"], "--steps"),
    (["--steps", "many"], "--steps"),
    (["--device", "tpu"], "--device"),
    (["--batch-size", "0"], "--batch-size"),
    (["--name", "../escape"], "--name"),
    (["--context", "pixelcnn"], "--context"),
    (["--data-root", "/nowhere"], "--data-root"),
    (["--model", "mfcc", "--modality", "vision"], "--model"),
    (["--model", "mfcc", "--depth", "3"], "--depth"),
    (["--model", "cpc", "--gim-mode", "summed"], "--gim-mode"),  # a sweep drops it; a run refuses it
    (["--model", "gim", "--pipeline", "gpipe"], "--pipeline"),
    (["--gim-mode", "summed", "--max-inflight", "4"], "--max-inflight"),
    (["--depth", "2,4"], "gimbench sweep"),
    (["--model", "cpc,gim"], "gimbench sweep"),
]


def exit_code(argv: list[str]) -> int:
    """main's return value, or the code of the SystemExit argparse raises."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("args,flag", BAD)
def test_bad_input_is_one_line_naming_the_flag(tmp_path, capsys, args, flag):
    code = exit_code(["run", "--quiet", "--device", "cpu", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and flag in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(tmp_path, capsys):
    assert main(["run", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_existing_named_run_folder_needs_overwrite(tmp_path, capsys):
    run_cli(tmp_path, "--steps", "2", "--depth", "2", "--batch-size", "2")
    code = main(["run", "--quiet", "--device", "cpu", "--out", str(tmp_path), "--name", "run", "--steps", "2"])
    assert code == 2 and "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "run" / "results.json").exists()
    run_cli(tmp_path, "--steps", "2", "--depth", "2", "--batch-size", "2", "--overwrite")


@pytest.mark.slow
def test_subprocess_user_mistake_has_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gimbench", "run", "--depth", "0", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "--depth" in out.stderr and "Traceback" not in out.stderr


def test_list_names_every_registry(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for name in [*STRATEGIES, *MODALITIES, *GIM_MODES, *NETWORKS, "synthetic", "paper", "tiny"]:
        assert name in text
    assert "The paper's audio encoder" in text  # networks are described
    assert "one backward" in text and "without autograd" in text  # every gim mode is described
    rows = [line.split("│")[1:4] for line in text.splitlines() if line.count("│") == 4]
    named = {(registry.strip(), name.strip()) for registry, name, _ in rows}
    assert {("engine", engine) for engine in ENGINES} <= named
    assert {("pipeline", pipeline) for pipeline in STRATEGIES["cpc"].variants} <= named
    said = " ".join(" ".join(cell.strip() for cell in row) for row in rows)  # wrapped cells joined
    assert "module-parallel under torchrun (--nproc), trains --model gim --gim-mode module-parallel" in said


def test_version_and_grouped_help_with_defaults(capsys):
    assert exit_code(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gimbench {gimbench.__version__}"
    assert exit_code(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{group}:\n" in out for group in ("method", "model", "data", "profiling", "output", "scale-out",
                                                     "recovery"))
    text = " ".join(out.split())
    assert "audio 6, vision 3" in text and "{" not in text.split("--depth DEPTH")[-1].split("--preset")[0]


def test_default_gim_mode_with_cpc_stays_valid(tmp_path):
    """The default --gim-mode given explicitly (as scripts and RunConfig(model="cpc", gim_mode="per-module") do)
    is not refused."""
    folder = run_cli(tmp_path, "--model", "cpc", "--gim-mode", "per-module", "--steps", "2", "--depth", "1")
    assert json.loads((folder / "results.json").read_text())["config"]["model"] == "cpc"


@pytest.mark.slow  # a traced run: ~4 s
def test_trace_writes_a_chrome_trace_with_one_event_per_module_phase(tmp_path):
    folder = run_cli(tmp_path, "--model", "cpc", "--steps", "2", "--depth", "2", "--batch-size", "2",
                     "--profile-steps", "0", "--memory-steps", "0", "--trace")
    doc = json.loads((folder / "results.json").read_text())
    trace = json.loads((folder / doc["trace"]["file"]).read_text())
    assert isinstance(trace["traceEvents"], list) and any(e.get("cat") != "gimbench" for e in trace["traceEvents"])
    phases = [(e["args"]["module"], e["args"]["phase"]) for e in trace["traceEvents"] if e.get("cat") == "gimbench"]
    assert sorted(phases) == sorted({(k, p) for k in (0, 1) for p in ("forward", "backward", "optimizer")}
                                    | {(1, "loss")})
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in trace["traceEvents"] if e.get("cat") == "gimbench")
    memory = [e for e in trace["traceEvents"] if e.get("cat") == "gimbench memory"]  # the step's memory track
    assert memory and all(e["ph"] == "C" and e["args"]["bytes"] >= 0 for e in memory)
    assert max(e["args"]["bytes"] for e in memory) > 0
    # On the CPU (run_cli's --device cpu) the memory_viz snapshot is skipped, and says so; on CUDA it is
    # test_trace_cuda_snapshot_loads_with_pytorchs_reader's (and benchmarks/gpu_check.py's) to check.
    assert doc["environment"]["device"] == "cpu" and not (folder / "memory_snapshot.pickle").exists()
    assert doc["trace"]["memory_snapshot"] is None and "skipped" in doc["trace"]["memory_snapshot_note"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="the memory_viz snapshot is recorded on CUDA only")
def test_trace_cuda_snapshot_loads_with_pytorchs_reader(tmp_path):
    import pickle

    from torch.cuda import _memory_viz

    folder = run_cli(tmp_path, "--device", "cuda", "--steps", "2", "--depth", "2", "--memory-steps", "0",
                     "--profile-steps", "0", "--trace")
    doc = json.loads((folder / "results.json").read_text())
    snapshot = pickle.loads((folder / doc["trace"]["memory_snapshot"]).read_bytes())
    assert snapshot["segments"] and "<html" in _memory_viz.trace_plot(snapshot).lower()


@pytest.mark.slow
def test_piped_output_honours_columns():
    env = os.environ | {"COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "gimbench", "list"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0 and max(map(len, out.stdout.splitlines())) <= 80
