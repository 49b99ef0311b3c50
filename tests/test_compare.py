"""``gimbench compare``: its rows, what every row shares, and what it refuses (no run is started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gimbench.cli import main
from gimbench.config import RunConfig
from gimbench.report.collect import Entry
from gimbench.sweep.compare import configurations, rows


def test_rows_are_the_savers_and_the_cuts_each_once():
    assert [label for label, _ in rows(6)] == ["cpc", "cpc-checkpoint", "cpc-accumulate2", "cpc-accumulate4",
                                              "gim-modules2", "gim-modules3", "gim-modules6"]
    assert [label for label, _ in rows(3)][-2:] == ["gim-modules2", "gim-modules3"]
    assert [label for label, _ in rows(1)][-1:] == ["gim-modules1"] and len(rows(1)) == 5


def test_every_row_shares_the_given_options_and_vision_the_same_head():
    base = RunConfig(modality="vision", batch_size=4, steps=3).to_dict()
    configs = configurations(base, {"modality", "batch_size", "steps", "out"}, depth=3)
    for config in configs:
        assert config.argv[:6] == ["--modality", "vision", "--steps", "3", "--batch-size", "4"]
        assert config.values["context"] == "none" and "--out" not in config.argv
    assert configs[1].argv[-3:] == ["--model", "cpc", "--checkpoint-activations"]
    assert configs[3].argv[-4:] == ["--model", "cpc", "--accumulate", "4"]
    assert configs[4].argv[-4:] == ["--model", "gim", "--modules", "2"]


@pytest.mark.parametrize(("args", "says"), [
    (["--model", "gim"], "--model does not apply: gimbench compare sets it per row"),
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
