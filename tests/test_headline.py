"""``gimbench headline``: the README's figure and the table under it come from one command over comparison folders;
the table's ratios are the results' own, a folder without probes draws no accuracy panel, and several batch sizes
draw lines over the batch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gimbench.cli import main
from gimbench.config import RunConfig
from gimbench.report.collect import collect
from gimbench.report.headline import BEGIN, END, Headline, ratio_text, settings, table
from gimbench.report.headline_plot import figure, save

MIB = 2**20
PNG = b"\x89PNG\r\n\x1a\n"
# label: (peak MiB, median step ms, its IQR ms)
ROWS = {"cpc": (40.0, 100.0, 2.0), "cpc-accumulate4": (18.0, 130.0, 4.0), "gim-modules6": (34.0, 104.0, 1.0),
        "cpc-bf16": (30.0, 90.0, 3.0)}


def results(label: str, modality: str, batch: int, timed: int, probe: bool, preset: str) -> dict:
    """A results.json document that passes the schema, with the figures the headline reads."""
    mib, ms, iqr = ROWS[label]
    config = RunConfig().to_dict() | {"model": label.split("-")[0], "modality": modality, "preset": preset,
                                      "depth": 6, "batch_size": batch, "steps": 30}
    step = {"time_ms": ms, "time_ms_unprofiled": ms, "timer_overhead": 0.0, "samples_per_second": 1e3 * batch / ms,
            "time_ms_iqr": iqr, "data_ms": 0.1, "timed_steps": timed, "unprofiled_steps": timed,
            "peak_memory_bytes": int(mib * MIB)}
    accuracy = {"speaker": {"per_module": [0.3, 0.2 + mib / 100], "chance": 0.1}} if probe else None
    return {"schema": "gimbench.run/1", "status": "complete", "memory_backend": "cpu-allocator", "config": config,
            "environment": {"device": "cpu", "device_name": "test CPU", "threads": 2, "torch": "2.11.0"},
            "modules": [], "step": step, "final_parameter_checksum": "0", "wall_seconds": 1.0, "probe": accuracy}


def comparison(folder: Path, modality: str = "audio", batch: int = 8, timed: int = 5, probe: bool = False,
               preset: str = "tiny") -> Path:
    """A comparison folder as ``gimbench compare`` leaves it: sweep.json and a run folder per row."""
    records = []
    for i, label in enumerate(ROWS, 1):
        run = folder / "runs" / f"{i:03d}-{label}"
        run.mkdir(parents=True)
        (run / "results.json").write_text(json.dumps(results(label, modality, batch, timed, probe, preset)))
        records.append({"name": run.name, "label": label, "folder": f"runs/{run.name}", "status": "complete",
                        "log": "x.log", "exit_code": 0, "error": None, "wall_seconds": 1.0, "options": {}})
    sweep = {"schema": "gimbench.sweep/1", "runs": records, "status": "complete", "swept": {"row": list(ROWS)},
             "started": "2026-12-07T12:00:00+00:00",
             "command": ["gimbench", "compare", "--modality", modality, "--out", str(folder), "--quiet",
                         f"--name={folder.name}"]}
    (folder / "sweep.json").write_text(json.dumps(sweep))
    return folder


def table_rows(text: str) -> dict[str, list[str]]:
    """The markdown table's body rows by their label."""
    return {m[0]: [c.strip() for c in m[1].split("|")] for m in re.findall(r"^\| `([^`]+)` \|(.*)\|$", text, re.M)}


def test_the_command_writes_the_figure_and_the_readme_table_with_the_results_ratios(tmp_path, capsys):
    folder = comparison(tmp_path / "audio")
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    assert main(["headline", str(folder), "--out", str(tmp_path / "docs" / "h.png"), "--readme", str(readme)]) == 0
    assert (tmp_path / "docs" / "h.png").read_bytes()[:8] == PNG
    text = readme.read_text()
    assert "old" not in text and text.startswith("# title\n") and text.endswith("after\n")
    assert "](docs/h.png)" in text and "`gimbench compare --modality audio`; 2026-12-07" in text
    rows = table_rows(text)
    shown = {label: "gim-per-layer" if label == "gim-modules6" else label for label in ROWS}  # depth 6: per layer
    assert list(rows) == list(shown.values())
    for label, (mib, _, _) in ROWS.items():
        assert float(rows[shown[label]][1]) == pytest.approx(mib / ROWS["cpc"][0], abs=0.005)  # 2 decimals
        assert float(rows[shown[label]][0]) == mib
    assert "speaker %" not in text and "provisional" not in text


def second_round(folder: Path, slower: float) -> None:
    """Add the second round of ``gimbench compare`` to ``folder``: every row again, in reverse order, its step time
    ``slower`` times the first round's, with no step peak and no probe (``--no-probe --memory-steps 0``)."""
    sweep = json.loads((folder / "sweep.json").read_text())
    for i, first in enumerate(reversed(list(sweep["runs"])), len(sweep["runs"]) + 1):
        doc = json.loads((folder / first["folder"] / "results.json").read_text())
        doc["step"] = {k: v for k, v in doc["step"].items() if k != "peak_memory_bytes"}
        doc["step"]["time_ms"] *= slower
        run = folder / "runs" / f"{i:03d}-{first['label']}-r2"
        run.mkdir()
        (run / "results.json").write_text(json.dumps(doc | {"probe": {}}))
        sweep["runs"].append(first | {"name": run.name, "label": f"{first['label']}-r2", "folder": f"runs/{run.name}"})
    (folder / "sweep.json").write_text(json.dumps(sweep))


def test_a_rows_rounds_are_one_row_timed_by_both_with_memory_and_accuracy_from_the_first(tmp_path):
    folder = comparison(tmp_path / "audio", probe=True)
    second_round(folder, slower=1.5)
    run = next((folder / "runs").glob("*-cpc-accumulate4-r2")) / "results.json"
    doc = json.loads(run.read_text())
    doc["step"]["time_ms"] = 170.0  # its rounds: 130 and 170 ms, against cpc's 100 and 150
    run.write_text(json.dumps(doc))
    rows = table_rows(table(Headline(settings(collect([folder])[0]), [])))
    assert list(rows) == ["cpc", "cpc-accumulate4", "gim-per-layer", "cpc-bf16"]  # no "-r2" row
    assert rows["cpc-accumulate4"][:2] == ["18.0", "0.45"]  # round one's peaks alone
    assert float(rows["cpc-accumulate4"][2]) == pytest.approx(150 / 125, abs=0.05)  # both rounds' times
    assert float(rows["cpc-accumulate4"][3]) == pytest.approx(100 * (0.2 + 18 / 100))  # the probed round's


def drawn(*folders: Path, accuracy: tuple[Path, ...] = ()):
    """The headline figure of ``folders``, with the accuracy of the ``accuracy`` folders."""
    probed = settings(collect(list(accuracy))[0]) if accuracy else []
    return figure(Headline(settings(collect(list(folders))[0]), probed))


def test_a_folder_without_probes_draws_no_accuracy_panel_and_one_with_probes_does(tmp_path):
    plain, probed = drawn(comparison(tmp_path / "plain")), drawn(comparison(tmp_path / "probed", probe=True))
    assert not any("accuracy" in ax.get_title() for ax in plain.axes) and len(plain.axes) == 2
    assert any("accuracy" in ax.get_title() for ax in probed.axes) and len(probed.axes) == 3


def test_accuracy_from_a_probed_comparison_beside_the_unprobed_rows_of_its_modality(tmp_path, capsys):
    paper, tiny = comparison(tmp_path / "paper", preset="paper"), comparison(tmp_path / "tiny", probe=True)
    vision = comparison(tmp_path / "vision", "vision", preset="paper")
    fig = drawn(paper, vision, accuracy=(tiny,))
    assert [ax.get_title().splitlines()[-1] for ax in fig.axes if "accuracy" in ax.get_title()] == ["audio tiny d6 b8"]
    assert main(["headline", str(paper), str(vision), "--accuracy", str(tiny), "--out", str(tmp_path / "h.png")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| row"))
    assert header.count("MiB") == 2 and header.count("speaker % (tiny)") == 1
    assert float(table_rows(out)["cpc"][3]) == pytest.approx(100 * (0.2 + 40 / 100))
    assert "- audio tiny d6 b8: `gimbench compare --modality audio`" in out and "accuracy only." in out


def test_two_modalities_are_two_column_groups_and_accuracy_is_a_column(tmp_path, capsys):
    audio, vision = comparison(tmp_path / "a", probe=True), comparison(tmp_path / "v", "vision", timed=3)
    assert main(["headline", str(audio), str(vision), "--out", str(tmp_path / "h.svg")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("| row"))
    assert header.count("MiB") == 2 and "speaker %" in header
    assert float(table_rows(out)["gim-per-layer"][3]) == pytest.approx(100 * (0.2 + 34 / 100))
    assert "vision tiny d6 b8" in out and "3 timed steps a row (under 5: its time ratios are provisional)" in out
    assert b"<svg" in (tmp_path / "h.svg").read_bytes()


def test_several_batch_sizes_draw_lines_over_the_batch_and_the_file_does_not_change(tmp_path):
    found = Headline(settings(collect([comparison(tmp_path / f"b{b}", batch=b) for b in (8, 16)])[0]), [])
    fig = figure(found)
    assert [ax.get_xlabel() for ax in fig.axes] == ["batch size", "batch size"]
    assert len(fig.axes[0].get_lines()) == len(ROWS)
    save(fig, tmp_path / "one.png")
    save(figure(found), tmp_path / "two.png")
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()


@pytest.mark.parametrize(("iqr", "shown"), [(4.0, "1.30"), (60.0, "1.3")])
def test_time_ratios_keep_only_the_decimals_their_spread_supports(tmp_path, iqr, shown):
    # 130 ms over cpc's 100 (IQR 2): half-spreads 2% and iqr/260 in quadrature, times 1.3, is the ratio's error:
    # 0.024 at an IQR of 4 ms keeps two decimals, 0.30 at 60 ms one (the report's rule, gimbench.report.noise).
    folder = comparison(tmp_path / "audio")
    run = next((folder / "runs").glob("*-cpc-accumulate4")) / "results.json"
    doc = json.loads(run.read_text())
    doc["step"]["time_ms_iqr"] = iqr
    run.write_text(json.dumps(doc))
    assert table_rows(table(Headline(settings(collect([folder])[0]), [])))["cpc-accumulate4"][2] == shown
    assert ratio_text(None) == ""


def test_user_mistakes_are_one_line(tmp_path, capsys):
    folder = comparison(tmp_path / "c")
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert main(["headline", str(folder), "--out", str(tmp_path / "h.png"), "--readme", str(readme)]) == 2
    assert main(["headline", str(folder), "--out", str(tmp_path / "h.jpg")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["headline", str(tmp_path / "empty"), "--out", str(tmp_path / "h.png")]) == 2
    assert main(["headline", str(folder), "--out", str(tmp_path / "h.png"), "--readme", str(tmp_path / "no.md")]) == 2
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert len(errors) == 4 and all(line.startswith("gimbench: error: ") for line in errors)
    assert "headline markers" in errors[0] and ".png or .svg" in errors[1] and "does not exist" in errors[3]
    assert not (tmp_path / "h.png").exists() and not captured.out  # a mistake writes and prints nothing
    assert readme.read_text() == "no markers\n"
