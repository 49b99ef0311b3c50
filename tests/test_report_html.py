"""``gimbench report``: the HTML page is self-contained and renders in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest
from html_tables import read_html, table
from rich.console import Console

from gimbench.cli import main
from gimbench.config import RunConfig
from gimbench.report.collect import collect, result_from_doc
from gimbench.report.html_tables import side_by_side
from gimbench.report.terminal import run_summary
from gimbench.runs.run import run

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def tiny_run(out, name: str, **options) -> None:
    run(RunConfig(**{"model": "gim", "depth": 1, "seed": 0} | options, preset="tiny", device="cpu", steps=4,
                  warmup_steps=1, profile_steps=1, memory_steps=1, batch_size=2, probe=False, quiet=True,
                  out=str(out), name=name))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    for depth in (1, 2):
        tiny_run(out, f"d{depth}", depth=depth)
    return [out / "d1", out / "d2"]


@pytest.fixture(scope="module")
def sweep_like(runs, tmp_path_factory):
    """A small cpc/gim comparison with two seeds at depth 1 (and gim at depth 2) in one folder of run folders,
    as ``gimbench run --out`` fills it; the gim runs are given a probe block by this test (probes are slow), and
    the two cpc seeds step times of 1x and 3x the slowest gim run's, so that their error bar is known."""
    out = tmp_path_factory.mktemp("compare")
    for folder in runs:
        shutil.copytree(folder, out / f"gim-{folder.name}-s0")
    tiny_run(out, "gim-d1-s1", seed=1)
    for seed in (0, 1):
        tiny_run(out, f"cpc-d1-s{seed}", model="cpc", seed=seed)
    for folder in out.glob("gim-*"):
        doc = json.loads((folder / "results.json").read_text())
        doc["probe"] = {"speaker": {"per_module": [0.2, 0.4][:doc["config"]["depth"]], "chance": 0.05}}
        (folder / "results.json").write_text(json.dumps(doc))
    slowest = max(json.loads((f / "results.json").read_text())["step"]["time_ms"] for f in out.glob("gim-*"))
    for seed in (0, 1):
        path = out / f"cpc-d1-s{seed}" / "results.json"
        doc = json.loads(path.read_text())
        doc["step"]["time_ms"] = slowest * (1 + 2 * seed)
        path.write_text(json.dumps(doc))
    return out


@pytest.fixture(scope="module")
def report(sweep_like, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report") / "r"
    assert main(["report", str(sweep_like), "--out", str(folder)]) == 0
    return folder / "index.html"


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def image(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(io.BytesIO(data), format="png")


def error_bar(pixels, colour: str) -> tuple[int, int]:
    """The ends of the tallest vertical line of ``colour`` in a plot (an error bar, with its marker and caps),
    in pixels above the x axis (the lowest row that is dark across most of the plot: the axes' bottom spine)."""
    rgb = pixels[..., :3]
    dark = (rgb.max(axis=-1) < 0.2).sum(axis=1)
    axis = int(np.nonzero(dark > 0.5 * dark.max())[0].max())
    mask = np.abs(rgb - np.array(matplotlib.colors.to_rgb(colour))).max(axis=-1) < 0.08
    best = (0, 0, 0)  # length, top, bottom
    for x in range(mask.shape[1]):
        rows = np.nonzero(mask[:, x])[0]
        if rows.size:
            breaks = np.nonzero(np.diff(rows) > 1)[0]
            for run in np.split(rows, breaks + 1):
                best = max(best, (run.size, int(run[0]), int(run[-1])))
    _, top, bottom = best
    assert best[0] > 40, "no error bar drawn"
    return axis - bottom, axis - top


@pytest.mark.slow  # five tiny runs and a report, shared by the module's fixtures
def test_the_page_fetches_nothing(report):
    text = report.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it with apt-get as root)")
def test_report_renders_in_headless_chromium_with_verdict_tables_and_plots(report, sweep_like, tmp_path):
    dom = chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    tables, images = read_html(dom)
    verdict = {row["method"]: row for row in table(tables, "depth 1: against cpc")}
    assert set(verdict) == {"cpc", "gim per-module"} and verdict["cpc"]["runs"] == verdict["gim per-module"]["runs"]
    assert verdict["cpc"]["x peak"] == "1.00x" and verdict["gim per-module"]["Δ speaker"] == "-"  # cpc: no probe
    assert re.search(r"depth 1: (no method saves memory against cpc|gim per-module needs least memory)", dom)
    repeats = {row["method"]: row for row in table(tables, "Repeats") if row["setting"] == "depth 1"}
    assert re.fullmatch(r"[\d.]+ \([\d.]+-[\d.]+\)", repeats["cpc"]["step ms"])  # mean (min-max) of 2 seeds
    environment = table(tables, "Environment")[0]
    assert environment["memory backend"] == "cpu-allocator"
    doc = json.loads((Path(table(tables, "Runs side by side")[0]["folder"]) / "results.json").read_text())
    assert environment["threads"] == str(doc["environment"]["threads"])  # CPU kernels' buffers grow with them
    rows = table(tables, "Runs side by side")
    for row in rows:
        doc = json.loads((Path(row["folder"]) / "results.json").read_text())
        assert row["peak"] == f"{doc['step']['peak_memory_bytes'] / 2**20:.1f}"
    alts = re.findall(r'<img alt="([^"]*)"', dom)
    assert any("probe accuracy vs step peak memory" in a for a in alts)
    assert any("methods on one scale" in a for a in alts) and "step peak memory vs depth" in alts
    for src in images:
        assert src.startswith("data:image/png;base64,")
        pixels = image(base64.b64decode(src.split(",", 1)[1]))
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0.05
    time_plot = re.search(r'<img alt="step time vs depth" src="data:image/png;base64,([^"]+)"', dom).group(1)
    low, high = error_bar(image(base64.b64decode(time_plot)), "tab:blue")  # cpc: its two seeds at depth 1
    assert high / low == pytest.approx(3, rel=0.06)  # the seeds' 1x and 3x from the y-axis' zero
    chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={tmp_path / 'shot.png'}", report.as_uri())
    shot = image((tmp_path / "shot.png").read_bytes())
    assert shot.shape[:2] == (1600, 1200) and len({tuple(p) for p in shot[::8, ::8].reshape(-1, shot.shape[2])}) > 50


@pytest.mark.slow  # five tiny runs and a report, shared by the module's fixtures
def test_every_table_has_a_csv_that_matches_report_json(report):
    doc = json.loads((report.parent / "report.json").read_text())
    assert "comparison" in doc["tables"] and "verdict-1" in doc["tables"]
    for path in doc["tables"].values():
        header, *rows = list(csv.reader((report.parent / path).open()))
        assert rows and all(len(r) == len(header) for r in rows)
    header, *rows = list(csv.reader((report.parent / doc["tables"]["comparison"]).open()))
    for row, entry in zip(rows, doc["runs"], strict=True):
        row = dict(zip(header, row, strict=True))
        assert row["folder"] == entry["folder"]
        assert row["peak"] == f"{entry['results']['step']['peak_memory_bytes'] / 2**20:.1f}"


@pytest.mark.slow  # five tiny runs and a report, shared by the module's fixtures
def test_summary_and_report_fit_80_columns_without_cutting(sweep_like, runs):
    console = Console(width=80, file=io.StringIO(), record=True)
    console.print(side_by_side(*collect([sweep_like])))
    doc = json.loads((runs[1] / "results.json").read_text())
    console.print(run_summary(result_from_doc(doc, runs[1])))
    text = console.export_text()
    assert "…" not in text and max(map(len, text.splitlines())) <= 80 and "with the module's loss head" in text


@pytest.mark.slow  # five tiny runs and a report, shared by the module's fixtures
def test_probe_and_largest_batch_blocks_are_shown(runs, tmp_path):
    """A copy of a real run, given a probe block and a --find-max-batch block by this test, to check their display."""
    folder = tmp_path / "run"
    shutil.copytree(runs[1], folder)
    doc = json.loads((folder / "results.json").read_text())
    doc["probe"] = {"speaker": {"per_module": [0.25, 0.5], "chance": 0.05}}
    tried = [{"batch_size": 48, "peak_bytes": 60 * 2**20, "fits": True},
             {"batch_size": 64, "peak_bytes": None, "fits": False}]
    doc["max_batch"] = {"budget_bytes": 64 * 2**20, "batch_size": 48, "peak_bytes": 60 * 2**20,
                        "backend": "cpu-tensor-tracker", "tried": tried}
    (folder / "results.json").write_text(json.dumps(doc))
    assert main(["report", str(folder), "--out", str(tmp_path / "r")]) == 0
    tables, images = read_html((tmp_path / "r" / "index.html").read_text())
    assert table(tables, "Runs side by side")[0]["probe speaker (last)"] == "50.0%"
    assert table(tables, "Largest batch")[0] | {"run": ""} == {
        "run": "", "budget MiB": "64.0", "max batch": "48", "peak MiB at it": "60.0", "backend": "cpu-tensor-tracker",
        "batch sizes tried": "48, 64 (no)"}
    assert [r["speaker"] for r in table(tables, "Linear probes")] == ["25.0%", "50.0%", "5.0%"]
    assert (tmp_path / "r" / "plots" / "001-probe.png").is_file()


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir(),
                                  lambda p: (p.mkdir(), (p / "sweep.json").write_text("{"))])
def test_a_folder_that_is_not_a_run_or_sweep_is_one_line(tmp_path, capsys, make):
    make(tmp_path / "x")
    assert main(["report", str(tmp_path / "x"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "x") in err and not (tmp_path / "r").exists()
