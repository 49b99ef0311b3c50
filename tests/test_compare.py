"""``gimbench compare``: its rows, what every row shares, and what it refuses (no run is started here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gimbench.cli import compare_rows, main, make_parser
from gimbench.config import RunConfig
from gimbench.report.collect import Entry
from gimbench.sweep.compare import TIMING_ONLY, configurations, row_of, rows

LIGHTER = ["cpc-bf16", "cpc-sgd", "gim-bf16", "gim-sgd"]


def test_rows_are_the_savers_the_cuts_and_the_lighter_arithmetic_and_optimizer_each_once():
    assert [label for label, _ in rows(6)] == ["cpc", "cpc-checkpoint", "cpc-accumulate2", "cpc-accumulate4",
                                              "gim-modules2", "gim-modules3", "gim-modules6", *LIGHTER]
    assert [label for label, _ in rows(3)][-6:-4] == ["gim-modules2", "gim-modules3"]
    assert [label for label, _ in rows(1)][-5:-4] == ["gim-modules1"] and len(rows(1)) == 9
    assert dict(rows(1))["gim-sgd"] == {"model": "gim", "optimizer": "sgd"}
    assert dict(rows(1))["cpc-bf16"] == {"model": "cpc", "precision": "bf16"}


def test_every_row_shares_the_given_options_and_vision_the_same_head():
    base = RunConfig(modality="vision", batch_size=4, steps=3).to_dict()
    configs = configurations(base, {"modality", "batch_size", "steps", "out"}, depth=3)
    for config in configs:
        assert config.argv[:6] == ["--modality", "vision", "--steps", "3", "--batch-size", "4"]
        assert config.values["context"] == "none" and "--out" not in config.argv
    assert configs[1].argv[-3:] == ["--model", "cpc", "--checkpoint-activations"]
    assert configs[3].argv[-4:] == ["--model", "cpc", "--accumulate", "4"]
    assert configs[4].argv[-4:] == ["--model", "gim", "--modules", "2"]


def test_by_default_every_row_runs_twice_in_abba_order_and_round_two_only_times_it():
    base = RunConfig(modality="audio", steps=3, memory_steps=1).to_dict()
    configs = configurations(base, {"modality", "steps", "memory_steps"}, depth=2)
    labels = [label for label, _ in rows(2)]
    assert [c.label for c in configs] == [*labels, *(f"{label}-r2" for label in reversed(labels))]
    first, second = configs[:len(labels)], {row_of(c.label): c for c in configs[len(labels):]}
    for config in first:
        again = second[config.label]
        assert config.values["probe"] and config.values["memory_steps"] == 1 and "--no-probe" not in config.argv
        assert not again.values["probe"] and again.values["memory_steps"] == 0
        assert again.argv.count("--no-probe") == 1 and again.argv.count("--memory-steps") == 1
        assert again.argv[again.argv.index("--memory-steps") + 1] == "0"
        assert {d: v for d, v in again.values.items() if d not in TIMING_ONLY} == \
            {d: v for d, v in config.values.items() if d not in TIMING_ONLY}  # same steps, seed, batch, network


def test_the_cli_defaults_to_two_rounds_and_rounds_1_is_one_pass():
    def labels(*argv: str) -> list[str]:
        parsed = make_parser().parse_args(["compare", "--preset", "tiny", "--device", "cpu", "--depth", "1", *argv])
        return [c.label for c in compare_rows(parsed)]

    assert labels("--rows", "cpc,gim-modules1") == ["cpc", "gim-modules1", "gim-modules1-r2", "cpc-r2"]
    assert labels("--rows", "cpc,gim-modules1", "--rounds", "1") == ["cpc", "gim-modules1"]


@pytest.mark.parametrize(("args", "says"), [
    (["--model", "gim"], "--model does not apply: gimbench compare sets it per row"),
    (["--optimizer", "sgd"], "--optimizer does not apply"),
    (["--accumulate", "3", "--batch-size", "8"], "--accumulate does not apply"),
    (["--batch-size", "6"], "--accumulate 4 must divide the batch (--batch-size 6)"),
])
def test_refusals_are_one_line_before_anything_runs(tmp_path, capsys, args, says):
    assert main(["compare", "--out", str(tmp_path / "c"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err
    assert not (tmp_path / "c").exists()


def test_report_labels_tell_the_rows_apart():
    def label(**options) -> str:
        return Entry(Path("."), {"config": RunConfig(depth=6).to_dict() | options}).strategy

    assert label(model="cpc") == "cpc"
    assert label(model="cpc", checkpoint_activations=True) == "cpc checkpointed"
    assert label(model="cpc", accumulate=2) == "cpc accumulate 2"
    assert label(model="gim", modules=2) == "gim per-module modules 2"
    assert label(model="gim", modules=6) == "gim per-module"
    assert label(model="gim", modules=3, split="balanced") == "gim per-module modules 3 balanced"
    assert label(model="cpc", precision="bf16") == "cpc bf16"
    assert label(model="gim", optimizer="sgd") == "gim per-module sgd"


TINY = ["--modality", "vision", "--preset", "tiny", "--device", "cpu", "--depth", "1", "--steps", "3",
        "--warmup-steps", "0", "--profile-steps", "1", "--memory-steps", "1", "--no-probe", "--batch-size", "4",
        "--quiet"]


@pytest.mark.slow
def test_a_stopped_comparison_resumes_what_is_left_and_rewrites_its_report(tmp_path, capsys):
    folder = tmp_path / "c"
    assert main(["compare", "--out", str(folder), "--rows", "cpc", *TINY]) == 0  # the default: two rounds
    document = json.loads((folder / "sweep.json").read_text())
    assert document["status"] == "complete" and [r["label"] for r in document["runs"]] == ["cpc", "cpc-r2"]
    assert document["command"][-2:] == ["--rounds", "2"]  # recorded, so --resume holds the rounds
    timing = document["runs"][-1]["command"]
    assert "--no-probe" in timing and timing[timing.index("--memory-steps") + 1] == "0"
    # As a signal during the last row leaves it: that row interrupted, the comparison resumable.
    last = folder / document["runs"][-1]["folder"]
    shutil.rmtree(last)
    document["runs"][-1] |= {"status": "interrupted", "error": "stopped by SIGTERM"}
    (folder / "sweep.json").write_text(json.dumps(document | {"status": "interrupted", "signal": "SIGTERM"}))
    first = (folder / document["runs"][0]["folder"] / "results.json").read_bytes()
    (folder / "report" / "index.html").unlink()

    assert main(["sweep", "--resume", str(folder)]) == 2
    assert "gimbench compare --resume continues it" in capsys.readouterr().err
    assert main(["compare", "--resume", str(folder), "--steps", "9"]) == 2
    assert "--steps cannot be given" in capsys.readouterr().err

    assert main(["compare", "--resume", str(folder), "--quiet"]) == 0
    resumed = json.loads((folder / "sweep.json").read_text())
    assert resumed["status"] == "complete" and len(resumed["resumed"]) == 1
    assert [r["status"] for r in resumed["runs"]] == ["complete"] * 2
    again = json.loads((last / "results.json").read_text())
    assert again["steps_completed"] == 3 and again["step"].get("peak_memory_bytes") is None  # round two: time only
    assert (folder / document["runs"][0]["folder"] / "results.json").read_bytes() == first  # not run again
    assert "(1 of 2 runs)" in (folder / "report" / "index.html").read_text()  # the peak of round one alone

    # A comparison recorded before the rounds were written out ran one round (the default then): nothing is left.
    (folder / "sweep.json").write_text(json.dumps(resumed | {"command": resumed["command"][:-2],
                                                             "runs": resumed["runs"][:1], "status": "interrupted"}))
    assert main(["compare", "--resume", str(folder), "--quiet"]) == 0
    assert [r["label"] for r in json.loads((folder / "sweep.json").read_text())["runs"]] == ["cpc"]


@pytest.mark.parametrize(("rows", "says"), [("cpc,gim-modules9", "no row 'gim-modules9' at depth 1; the rows are cpc,"),
                                            ("cpc-bf16,gim-bf16", "--rows must include cpc")])
def test_rows_that_do_not_exist_or_lack_the_baseline_are_one_line(tmp_path, capsys, rows, says):
    assert main(["compare", "--out", str(tmp_path / "c"), "--rows", rows, *TINY]) == 2
    assert says in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_an_sgd_row_at_its_own_default_rate_shares_the_setting_of_the_adam_rows():
    from gimbench.report.groups import setting_key

    def entry(**options) -> Entry:
        return Entry(Path("."), {"config": RunConfig(depth=6, preset="tiny", modality="audio").to_dict() | options})

    adam, sgd = entry(model="cpc", lr=1e-3), entry(model="gim", optimizer="sgd", lr=5e-2)
    assert setting_key(adam) == setting_key(sgd)
    assert setting_key(entry(model="gim", optimizer="sgd", lr=1e-3)) != setting_key(adam)  # a rate given by hand
