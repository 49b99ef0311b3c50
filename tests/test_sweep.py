"""``gimbench sweep``: configurations, validation before anything runs, fresh processes, sweep.json, and its report."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from html_tables import read_html, table

from gimbench.cli import main, make_parser
from gimbench.sweep.grid import Configuration, configurations
from gimbench.sweep.runner import run_sweep

MIB = 2**20
TINY = ["--preset", "tiny", "--device", "cpu", "--steps", "4", "--warmup-steps", "1", "--profile-steps", "1",
        "--memory-steps", "1", "--batch-size", "2", "--no-probe"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A real sweep's folder and what it printed (not a terminal: a plain line per run)."""
    folder = tmp_path_factory.mktemp("sweep") / "s"
    with contextlib.redirect_stdout(io.StringIO()) as out:
        # Vision: its embedded images are made in a fraction of the time the audio corpus takes in each run's process.
        assert main(["sweep", "--model", "cpc,gim", "--depth", "1,2", "--modality", "vision", *TINY, "--out",
                     str(folder)]) == 0
    return folder, out.getvalue()


@pytest.fixture(scope="module")
def sweep(swept):
    return swept[0]


@pytest.mark.slow
def test_sweep_prints_a_line_per_run_and_the_runs_side_by_side(swept):
    lines = swept[1].splitlines()
    assert [line.split(": complete in ")[0] for line in lines[:4]] == [
        "[1/4] cpc-depth1", "[2/4] cpc-depth2", "[3/4] gim-depth1", "[4/4] gim-depth2"]
    assert "4 runs, 0 failed" in swept[1] and "depth 2: gim per-module needs least memory" in swept[1]


def grid(*args: str) -> list[Configuration]:
    parsed = make_parser().parse_args(["sweep", *args])
    return configurations(parsed, parsed.run_options)[0]


@pytest.mark.slow
def test_sweep_json_lists_every_run_with_its_outcome(sweep):
    doc = json.loads((sweep / "sweep.json").read_text())
    assert doc["schema"] == "gimbench.sweep/1" and doc["status"] == "complete"
    assert doc["swept"] == {"model": ["cpc", "gim"], "depth": [1, 2]}
    assert [r["label"] for r in doc["runs"]] == ["cpc-depth1", "cpc-depth2", "gim-depth1", "gim-depth2"]
    for record in doc["runs"]:
        results = json.loads((sweep / record["folder"] / "results.json").read_text())
        assert record["status"] == "complete" and record["exit_code"] == 0 and record["error"] is None
        assert {k: results["config"][k] for k in ("model", "depth", "batch_size", "steps", "probe")} == {
            "model": record["options"]["model"], "depth": record["options"]["depth"], "batch_size": 2, "steps": 4,
            "probe": False}
        assert record["peak_memory_bytes"] == results["step"]["peak_memory_bytes"] > 0
        assert record["wall_seconds"] > results["wall_seconds"] > 0
    assert doc["wall_seconds"] >= doc["runs_wall_seconds"] == pytest.approx(sum(r["wall_seconds"] for r in doc["runs"]))
    assert doc["overhead"] == pytest.approx(doc["wall_seconds"] / doc["runs_wall_seconds"] - 1)


@pytest.mark.slow
def test_report_of_a_sweep_shows_every_configurations_figures(sweep, tmp_path, capsys):
    assert main(["report", str(sweep), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "cpc · context pixelcnn · d2" in out and out.startswith("depth 1: against cpc")
    tables, images = read_html((tmp_path / "r" / "index.html").read_text())
    rows = {row["run"]: row for row in table(tables, "Runs side by side")}
    sweep_doc = json.loads((sweep / "sweep.json").read_text())
    for record in sweep_doc["runs"]:
        results = json.loads((sweep / record["folder"] / "results.json").read_text())
        c, step = results["config"], results["step"]
        row = rows[f"{'gim per-module' if c['model'] == 'gim' else 'cpc'} · context {c['context']} · d{c['depth']}"]
        assert row["peak"] == f"{step['peak_memory_bytes'] / MIB:.1f}"
        assert row["floor"] == f"{step['floor_bytes'] / MIB:.1f}"
        assert row["step ms"] == f"{step['time_ms']:.1f}" and row["depth"] == str(c["depth"])
        module_peaks = [f"{m['memory']['peak_bytes'] / MIB:.1f}" for m in results["modules"]]
        memory_tables = [t for t in tables if t["caption"].startswith("Modules: peak memory")]
        assert any([r[2] for r in t["rows"][1:]] == module_peaks for t in memory_tables)
    # memory and time vs depth (no accuracy vs memory: no run has a probe); per setting (depth 1, depth 2) the
    # module bars, the memory timelines and the utilisation bars of both methods
    assert len(images) == 2 + 2 + 2 + 2
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [r["results"]["step"]["peak_memory_bytes"] for r in report["runs"]] == [
        r["peak_memory_bytes"] for r in sweep_doc["runs"]]
    assert (tmp_path / "r" / "tables" / "comparison.svg").read_text().startswith("<svg")
    assert (tmp_path / "r" / "plots" / "memory-vs-depth.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_options_that_do_not_apply_are_dropped_not_repeated():
    configs = grid("--model", "cpc,gim,mfcc", "--gim-mode", "per-module,summed", "--depth", "1,2",
                   "--context", "auto,none")
    assert len(grid("--model", "cpc,mfcc", "--modality", "audio,vision")) == 3  # no MFCC on images
    assert [c.label for c in configs] == ["cpc-depth1", "cpc-depth2", "gim-per-module-depth1", "gim-summed-depth1",
                                          "gim-per-module-depth2", "gim-summed-depth2", "mfcc"]
    assert configs[0].argv == ["--model", "cpc", "--depth", "1"]  # only options that apply, as typed
    assert configs[3].argv == ["--model", "gim", "--depth", "1", "--gim-mode", "summed"]  # no --context on audio
    assert [c.name for c in configs][:2] == ["001-cpc-depth1", "002-cpc-depth2"]


@pytest.mark.parametrize("flag,values,named", [("--depth", "1,x", "'x'"), ("--model", "cpc,nope", "'nope'"),
                                               ("--depth", "1,40", "40"), ("--batch-size", "2,0", "0"),
                                               ("--steps", "3,", "empty"), ("--modality", "vision", "mfcc")])
def test_a_bad_value_in_a_list_stops_the_sweep_before_it_starts(tmp_path, capsys, flag, values, named):
    model = ["--model", "mfcc"] if named == "mfcc" else []
    assert main(["sweep", *TINY, *model, flag, values, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gimbench: error: ") and flag in err and named in err
    assert not (tmp_path / "s").exists()


def test_an_existing_sweep_folder_is_not_reused_without_overwrite(tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.json").write_text("{}")
    assert main(["sweep", *TINY, "--out", str(tmp_path / "s")]) == 2
    assert "--overwrite" in capsys.readouterr().err and (tmp_path / "s" / "sweep.json").read_text() == "{}"


@pytest.mark.slow
def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    bad = Configuration({"depth": 0}, ["--depth", "0", *TINY], "bad", 1)  # validation skipped on purpose
    good = Configuration({"model": "random", "depth": 1}, ["--model", "random", "--depth", "1", *TINY], "good", 2)
    doc = run_sweep([bad, good], tmp_path / "s", swept={}, command=["test"])
    failed, done = doc["runs"]
    assert failed["status"] == "failed" and failed["exit_code"] == 2
    assert failed["error"] == "gimbench: error: --depth must be between 1 and 16, got 0"
    assert "--depth must be" in (tmp_path / "s" / failed["log"]).read_text()
    assert done["status"] == "complete" and doc["status"] == "complete"
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["runs"] == doc["runs"]
    assert main(["report", str(tmp_path / "s"), "--out", str(tmp_path / "r")]) == 0
    tables, _ = read_html((tmp_path / "r" / "index.html").read_text())
    assert table(tables, "Failed runs")[0]["error"] == failed["error"]
