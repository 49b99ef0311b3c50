"""Your own network (``--network path/to/file.py:make``, ``package.module:make``, ``gimbench.run(cfg, network=make)``)
trains under the methods with per-module rows, and every way it can be broken is one line, exit 2; the acceptance
command of issue #25 on torchvision's resnet18."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from torch import nn

from gimbench import RunConfig, run
from gimbench.cli import main

NETWORK = '''
from torch import nn


def make():
    """Three conv layers on 32x32 RGB, the first with BatchNorm."""
    layers = [nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU()),
              nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU()),
              nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU())]
    return layers, (3, 32, 32)


def named():
    return nn.Sequential(nn.Conv1d(1, 8, 10, 5), nn.ReLU(), nn.Conv1d(8, 8, 4, 2)), (1, 5120)


def not_a_pair():
    return [nn.ReLU()]


def not_layers():
    return "conv", (3, 32, 32)


def bad_shape():
    return [nn.Conv2d(3, 4, 3)], (3, 32, 32, 1)


def stereo():
    return [nn.Conv1d(2, 4, 3)], (2, 5120)


def odd_audio():
    return [nn.Conv1d(1, 4, 10, 5)], (1, 5000)


class Pair(nn.Module):
    def forward(self, x):
        return x, x


def tuple_out():
    return [nn.Conv2d(3, 4, 3), Pair()], (3, 32, 32)


def flat():
    return [nn.Conv2d(3, 4, 3), nn.Flatten()], (3, 32, 32)


def raises():
    raise RuntimeError("no weights here")


def wrong_channels():
    return [nn.Conv2d(1, 4, 3)], (3, 32, 32)
'''
TINY = ["--preset", "tiny", "--device", "cpu", "--quiet", "--no-probe", "--batch-size", "2", "--steps", "3",
        "--warmup-steps", "1", "--memory-steps", "1", "--profile-steps", "1"]


@pytest.fixture(scope="module")
def user_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user") / "mynet.py"
    path.write_text(NETWORK)
    return path


def options(tmp_path: Path, name: str, **values) -> RunConfig:
    return RunConfig(preset="tiny", device="cpu", steps=3, batch_size=2, warmup_steps=1, memory_steps=1,
                     profile_steps=1, quiet=True, probe=False, out=str(tmp_path), name=name, **values)


@pytest.mark.parametrize("model", ["gim", "cpc"])
def test_a_network_in_a_file_trains_with_a_row_per_module(user_file, model, tmp_path):
    result = run(options(tmp_path, model, model=model, network=f"{user_file}:make"))
    doc = json.loads((Path(result.folder) / "results.json").read_text())
    assert doc["config"]["network"] == f"{user_file}:make" and doc["config"]["modality"] == "vision"
    assert [m["name"] for m in doc["modules"]] == ["layer1", "layer2", "layer3"]
    assert all(m["memory"]["peak_bytes"] > 0 for m in doc["modules"])
    # Each layer's conv (and BatchNorm), and the method's InfoNCE heads: 5 steps of a C x C predictor on the 16x16
    # and 8x8 maps, on every layer for gim, on the top one for cpc.
    convs, heads = [3 * 8 * 9 + 8 + 2 * 8, 8 * 16 * 9 + 16, 16 * 16 * 9 + 16], [5 * 8 * 8, 5 * 16 * 16, 5 * 16 * 16]
    expected = [c + h for c, h in zip(convs, heads, strict=True)] if model == "gim" else \
        [*convs[:2], convs[2] + heads[2]]
    assert [m["parameters"] for m in doc["modules"]] == expected


def test_an_nn_sequential_of_a_module_on_the_path_trains_on_audio(user_file, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(user_file.parent))
    result = run(options(tmp_path, "audio", model="gim", network="mynet:named", modules=2))
    assert result.config["modality"] == "audio" and [m.name for m in result.modules] == ["layer1-layer2", "layer3"]
    sys.modules.pop("mynet", None)


def make_here():
    """A network defined in the test file itself, handed to ``gimbench.run``."""
    return [nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU()), nn.Conv2d(4, 4, 3, 2, 1)], (3, 16, 16)


def test_the_python_api_takes_a_make_function(tmp_path):
    result = run(options(tmp_path, "api", model="greedy-supervised"), network=make_here)
    assert result.config["network"] == f"{__name__}:make_here" and len(result.modules) == 2


@pytest.mark.parametrize(("function", "message"), [
    ("nope", "has no function nope"),
    ("not_a_pair", "make() must return (layers, input_shape), got list"),
    ("not_layers", "make()'s layers must be a non-empty list of nn.Module or an nn.Sequential, got str"),
    ("bad_shape", "make()'s input shape must be (1, samples) for audio or (channels, height, width)"),
    ("stereo", "an audio input is (1, samples), got (2, 5120)"),
    ("odd_audio", "cannot give network"),
    ("tuple_out", "layer 'layer2' returns tuple, not a tensor"),
    ("flat", "layer 'layer2' outputs (1, 3600) per example: no InfoNCE head reads that"),
    ("raises", "make() failed (RuntimeError: no weights here)"),
    ("wrong_channels", "layer 'layer1' fails on an input of shape (3, 32, 32)"),
])
def test_a_broken_network_is_one_line_and_exit_2(user_file, function, message, tmp_path, capsys):
    code = main(["run", "--network", f"{user_file}:{function}", *TINY, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("gimbench: error: ") and err.count("\n") == 1
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(("spec", "message"), [
    ("/no/such/file.py:make", "no such file /no/such/file.py"),
    ("no_such_package.module:make", "cannot import no_such_package.module (ModuleNotFoundError"),
])
def test_a_network_that_is_not_there_is_one_line(spec, message, tmp_path, capsys):
    assert main(["run", "--network", spec, *TINY, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_a_file_that_fails_on_import_is_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nraise ValueError('half written')\n")
    assert main(["run", "--network", f"{broken}:make", *TINY, "--out", str(tmp_path)]) == 2
    assert f"cannot import {broken} (ValueError: half written)" in capsys.readouterr().err


@pytest.mark.slow  # resnet18 at tiny with memory tracking: ~4 s
def test_the_acceptance_command_reports_torchvisions_stages_with_memory(tmp_path):
    # The command as written: the default warm-up is at most half of 3 steps, so 2 are memory-tracked.
    code = main(["run", "--network", "resnet18", "--model", "gim", "--modality", "vision", "--depth", "4", "--preset",
                 "tiny", "--device", "cpu", "--steps", "3", "--no-probe", "--quiet",
                 "--out", str(tmp_path), "--name", "acceptance"])
    doc = json.loads((tmp_path / "acceptance" / "results.json").read_text())
    assert code == 0 and [m["name"] for m in doc["modules"]] == ["stem", "layer1", "layer2", "layer3"]
    assert all(m["memory"]["peak_bytes"] > 0 and m["memory"]["parameter_bytes"] > 0 for m in doc["modules"])
