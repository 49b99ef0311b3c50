"""A network defined here, outside the package, registered as docs/extending.md says and trained through
``gimbench.run``: the method attaches its heads, the run reports the network's own layers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from gimbench import ConfigError, RunConfig, run
from gimbench.config import resolve
from gimbench.models import NETWORKS, Layers, register_network
from gimbench.models.presets import PRESETS
from gimbench.results.schema import parameter_checksum
from gimbench.runs.build import network_for
from gimbench.strategies import spec_of
from gimbench.strategies.heads import build_network

TOY = "toy-audio"
WIDTHS = (1, 8, 8, 16)


def toy_audio(preset: str, depth: int) -> Layers:
    """Three strided Conv1d + ReLU layers on the embedded audio."""
    layers = [nn.Sequential(nn.Conv1d(WIDTHS[i], WIDTHS[i + 1], 4, stride=4), nn.ReLU()) for i in range(depth)]
    return Layers(layers, [f"toy{i + 1}" for i in range(depth)], (1, PRESETS[preset]["audio"].crop_samples))


@pytest.fixture(scope="module")
def toy():
    register_network(TOY, modality="audio", reference_depth=3)(toy_audio)
    yield TOY
    del NETWORKS[TOY]


def toy_config(model: str, out: Path, **options) -> RunConfig:
    return RunConfig(model=model, network=TOY, modality="audio", preset="tiny", device="cpu", steps=3, warmup_steps=1,
                     profile_steps=1, memory_steps=1, batch_size=4, quiet=True, probe=False, out=str(out), name=model,
                     **options)


@pytest.mark.parametrize("model", ["gim", "cpc"])
def test_a_network_registered_from_a_test_file_trains(toy, model, tmp_path):
    cfg = toy_config(model, tmp_path)
    resolved = resolve(cfg)
    initial = parameter_checksum(network_for(resolved, spec_of(resolved)))
    result = run(cfg)
    assert [m.name for m in result.modules] == ["toy1", "toy2", "toy3"]
    # The method's heads: an InfoNCE predictor (16 x 16*12) on every module for gim, on the top one for cpc.
    conv = [WIDTHS[i] * WIDTHS[i + 1] * 4 + WIDTHS[i + 1] for i in range(3)]
    heads = [WIDTHS[i + 1] ** 2 * PRESETS["tiny"]["audio"].prediction_steps for i in range(3)]
    expected = [c + h for c, h in zip(conv, heads, strict=True)] if model == "gim" else [*conv[:2], conv[2] + heads[2]]
    assert [m.parameters for m in result.modules] == expected
    assert result.final_parameter_checksum != initial
    written = json.loads((Path(result.folder) / "results.json").read_text())
    assert written["config"]["network"] == TOY
    assert [row["name"] for row in written["modules"]] == ["toy1", "toy2", "toy3"]


def test_a_registered_network_groups_into_modules(toy, tmp_path):
    result = run(toy_config("gim", tmp_path, modules=2))
    assert [m.name for m in result.modules] == ["toy1-toy2", "toy3"]


@pytest.mark.parametrize(("options", "message"), [
    (dict(network="no-such-net"), "network: 'no-such-net' is not one of"),
    (dict(network=TOY, modality="vision"), f"network '{TOY}' reads audio; use --modality audio"),
    (dict(network=TOY, depth=4), "--depth must be between 1 and 3, got 4"),
    (dict(network=TOY, model="mfcc"), "reads MFCC features"),
])
def test_a_network_that_cannot_run_is_one_line(toy, options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        resolve(RunConfig(**{"preset": "tiny", "device": "cpu", **options}))


def flat(preset: str, depth: int) -> Layers:
    """One layer whose output is no sequence: (B, 64)."""
    return Layers([nn.Flatten()], ["flat"], (1, 64))


def test_a_layer_no_head_reads_is_one_line():
    register_network("toy-flat", modality="audio", reference_depth=1)(flat)
    try:
        with pytest.raises(ConfigError, match=r"layer 'flat' outputs \(1, 64\) per example: no InfoNCE head"):
            build_network(network="toy-flat", preset="tiny", depth=1, heads_on=[0], context="none")
    finally:
        del NETWORKS["toy-flat"]


def test_the_default_network_is_the_modality_paper_encoder():
    assert [resolve(RunConfig(modality=m, device="cpu")).network for m in ("audio", "vision")] == \
        ["cpc-audio", "gim-vision"]
    assert resolve(RunConfig(model="mfcc", device="cpu")).network == "mfcc"
