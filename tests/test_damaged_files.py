"""Damaged and hostile files (#28): checkpoints (flipped bytes, inconsistent contents), results.json, sweep.json,
benchmark JSON and class_names.txt are refused in one line naming the file and the field, never a traceback."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from data_fixtures import write_stl10
from fuzz_files import fresh_copy

from gimbench.cli import main
from gimbench.runs import checkpoint
from gimbench.runs import run as run_module


@pytest.fixture
def copy(world, tmp_path) -> Path:
    """A fresh copy of the finished run's folder, to damage."""
    return fresh_copy(world["run"], tmp_path / "run")


@pytest.fixture
def sweep(world, tmp_path) -> Path:
    """A fresh copy of the sweep folder, to damage."""
    return fresh_copy(world["sweep"], tmp_path / "sweep")


def cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str) -> bool:
    return code == 2 and err.count("\n") == 1 and err.startswith("gimbench: error:") and "Traceback" not in err


def flip(path: Path, at: int, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    data[at:at + count] = bytes(b ^ 0xFF for b in data[at:at + count])
    path.write_bytes(bytes(data))


def tensor_member(path: Path) -> tuple[str, int]:
    """The largest stored tensor of a checkpoint zip, and where its data begins in the file (after the member's
    local header: 30 bytes, its name and its extra field)."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    header = path.read_bytes()[info.header_offset:info.header_offset + 30]
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.filename, info.header_offset + 30 + name_length + extra_length


@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_64_flipped_bytes_in_the_middle_are_refused_naming_the_file_and_member(copy, capsys):
    path = copy / checkpoint.LATEST
    flip(path, path.stat().st_size // 2)
    for argv in (["run", "--resume", str(copy), "--steps", "4"], ["probe", str(copy)]):
        code, err = cli(argv, capsys)
        assert one_line_error(code, err) and str(path) in err and "fails its CRC check" in err, err
        assert "checkpoint.prev.pt exists: rename it" in err  # no silent fallback (docs/reliability.md)


@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_a_flip_inside_a_stored_tensor_is_refused(copy, capsys):
    path = copy / checkpoint.LATEST
    member, start = tensor_member(path)
    flip(path, start + 8, 4)
    torch.load(path, weights_only=True)  # the damage is invisible to torch itself: it unpickles fine
    code, err = cli(["run", "--resume", str(copy), "--steps", "4"], capsys)
    assert one_line_error(code, err) and f"its member {member} fails its CRC check" in err


def rewrite(folder: Path, change) -> None:
    """Save the folder's checkpoint again with ``change(state)`` applied: right keys, inconsistent contents."""
    state = torch.load(folder / checkpoint.LATEST, weights_only=True)
    change(state)
    checkpoint.save(folder, {k: v for k, v in state.items() if k != "format"})


def short_history(state: dict) -> None:
    state["history"]["losses"] = state["history"]["losses"][:1]


def adam_of_the_wrong_shape(state: dict) -> None:
    moments = state["optimizers"][0]["state"][0]
    moments["exp_avg"] = torch.zeros(3, 3)


def a_parameter_of_the_wrong_shape(state: dict) -> None:
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(1)


def one_optimizer_missing(state: dict) -> None:
    state["optimizers"] = state["optimizers"][:1]


@pytest.mark.parametrize(("change", "expected"), [
    (short_history, "history.losses does not hold one entry for each of its 2 steps"),
    (adam_of_the_wrong_shape, "optimizer 0's exp_avg has shape (3, 3)"),
    (a_parameter_of_the_wrong_shape, "size mismatch"),
    (one_optimizer_missing, "1 optimizers for 2 modules"),
])
@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_inconsistent_contents_are_refused_at_load(copy, capsys, change, expected):
    rewrite(copy, change)
    code, err = cli(["run", "--resume", str(copy), "--steps", "4"], capsys)
    assert one_line_error(code, err) and "does not fit" in err and expected in err, err
    assert torch.load(copy / checkpoint.LATEST, weights_only=True)["step"] == 2  # nothing was trained or written


@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_an_intact_checkpoint_still_resumes(copy, capsys, monkeypatch):
    # The resumed run's probes (the run is probed) come after the checkpoint is read and trained on: not probed here.
    monkeypatch.setattr(run_module, "probe_results", lambda *args, **kwargs: {})
    code, _ = cli(["run", "--resume", str(copy), "--steps", "3"], capsys)
    assert code == 0 and torch.load(copy / checkpoint.LATEST, weights_only=True)["step"] == 3


@pytest.mark.parametrize(("content", "expected"), [
    (b"airplane\nbird\ncar\n", "names 3 classes, not 10"), (b"", "names 0 classes, not 10"),
    (b"airplane\n\xff\xfe bird\n", "cannot be read as UTF-8 text"),
])
def test_a_damaged_class_names_file_is_one_line_in_data_check(tmp_path, capsys, content, expected):
    root = tmp_path / "data"
    write_stl10(root, {"train": 10, "test": 10})
    names = next(root.rglob("class_names.txt"))
    names.write_bytes(content)
    code, err = cli(["data", "check", "--data", "stl10", "--data-root", str(root)], capsys)
    assert one_line_error(code, err) and str(names) in err and expected in err and "optional" in err


DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_deeply_nested_json_is_one_line_for_every_reader(copy, tmp_path, capsys):
    (copy / "results.json").write_text(DEEP)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(DEEP)
    bench = tmp_path / "bench.json"
    bench.write_text(DEEP)
    for argv in (["run", "--resume", str(copy), "--steps", "4"], ["probe", str(copy)], ["report", str(copy)],
                 ["report", str(sweep)], ["sweep", "--resume", str(sweep)], ["bench-compare", str(bench), str(bench)]):
        code, err = cli(argv, capsys)
        assert one_line_error(code, err) and "nested too deeply" in err, (argv, err)


@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_a_lone_surrogate_in_results_json_is_one_line(copy, tmp_path, capsys):
    """An escaped lone surrogate parses as JSON, then failed printing the report (issue 28, found by relA)."""
    text = (copy / "results.json").read_text()
    damaged = text.replace('"status": "complete"', '"status": "complete", "x": "\\udcff"', 1)
    assert damaged != text
    (copy / "results.json").write_text(damaged)
    for argv in (["report", str(copy), "--out", str(tmp_path / "r")], ["probe", str(copy)]):
        code, err = cli(argv, capsys)
        assert one_line_error(code, err) and "lone surrogate" in err, (argv, err)


def edited(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.update(modules=[1, 2]), "modules[0] is 1, not an object"),
    (lambda d: d["step"].update(time_ms="fast"), "step.time_ms is 'fast', not a finite number of at least 0"),
    (lambda d: d["config"].update(depth="six"), "config.depth is 'six', not a count"),
    (lambda d: d["step"].update(peak_memory_bytes=float("nan")), "step.peak_memory_bytes is nan"),
    (lambda d: d["config"].pop("model"), "config.model is missing"),
])
@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_results_json_of_wrong_inner_types_is_one_line_naming_the_field(copy, tmp_path, capsys, change, field):
    edited(copy / "results.json", change)
    for argv in (["report", str(copy), "--out", str(tmp_path / "report")], ["probe", str(copy)]):
        code, err = cli(argv, capsys)
        assert one_line_error(code, err) and f"{copy / 'results.json'}: {field}" in err, (argv, err)



@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["runs"][0].update(status="done"), "runs[0].status is 'done', not one of"),
    (lambda d: d["runs"][0].update(folder="../../etc"), "runs[0].folder is '../../etc', not a folder runs/NAME"),
    (lambda d: d["runs"][0].update(wall_seconds="long"), "runs[0].wall_seconds is 'long'"),
    (lambda d: d["runs"][0]["options"].update(depth="six"), "runs[0].options.depth is 'six'"),
    (lambda d: d.update(swept=7), "swept is 7, not an object"),
    (lambda d: d.update(command=["gimbench", 1]), "command[1] is 1, not a string"),
])
@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_sweep_json_with_bad_fields_is_one_line_naming_the_field(sweep, tmp_path, capsys, change, field):
    edited(sweep / "sweep.json", change)
    for argv in (["report", str(sweep), "--out", str(tmp_path / "report")], ["sweep", "--resume", str(sweep)]):
        code, err = cli(argv, capsys)
        assert one_line_error(code, err) and f"{sweep / 'sweep.json'}: {field}" in err, (argv, err)


@pytest.mark.parametrize(("change", "field"), [
    (lambda b: b["extra_info"].update(step_peak_bytes=0), "extra_info.step_peak_bytes is 0"),
    (lambda b: b["extra_info"].update(step_peak_bytes=-5), "extra_info.step_peak_bytes is -5"),
    (lambda b: b["extra_info"].update(step_peak_bytes=True), "extra_info.step_peak_bytes is True"),
    (lambda b: b["extra_info"].update(step_peak_bytes=float("nan")), "extra_info.step_peak_bytes is nan"),
    (lambda b: b["extra_info"].update(step_peak_bytes=10**400), "extra_info.step_peak_bytes is 1000"),
    (lambda b: b["extra_info"].update(module_peak_bytes=5), "extra_info.module_peak_bytes is 5, not a list"),
    (lambda b: b["extra_info"].update(module_names=7), "extra_info.module_names is 7, not a list"),
    (lambda b: b.update(extra_info=[1]), "extra_info is [1], not an object"),
    (lambda b: b.update(fullname=["a"]), "fullname is ['a'], not a string"),
])
@pytest.mark.slow  # the session's probed world run: ~20 s to make
def test_bench_compare_refuses_bad_memory_figures_naming_the_field(world, tmp_path, capsys, change, field):
    bad = tmp_path / "bad.json"
    bad.write_bytes(world["bench"].read_bytes())
    edited(bad, lambda doc: change(doc["benchmarks"][0]))
    for argv in (["bench-compare", str(bad), str(world["bench"])], ["bench-compare", str(world["bench"]), str(bad)]):
        code, err = cli(argv, capsys)
        assert one_line_error(code, err) and f"{bad}: benchmarks[0].{field}" in err, (argv, err)


@pytest.mark.slow
def test_the_real_entry_point_ends_the_same_way(copy):
    """The in-process tests call ``main``; ``python -m gimbench`` exits with its status and prints the same line."""
    (copy / "results.json").write_text(DEEP)
    done = subprocess.run([sys.executable, "-m", "gimbench", "report", str(copy)], capture_output=True, text=True,
                          timeout=300)
    assert one_line_error(done.returncode, done.stderr) and "nested too deeply" in done.stderr
