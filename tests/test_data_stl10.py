"""STL-10 from the binary release: decoding, views, probes, bad files, and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data_fixtures import write_stl10
from PIL import Image
from torch import nn

from gimbench import RunConfig
from gimbench.cli import main
from gimbench.config import resolve
from gimbench.data import make_source
from gimbench.data.corpus import IMAGE_MEAN, IMAGE_STD
from gimbench.data.problems import DataError
from gimbench.data.stl10 import Stl10, Stl10Split
from gimbench.models import NETWORKS, Layers, register_network

SIDE = 96


def pil_gray(images: np.ndarray) -> np.ndarray:
    """(N, 96, 96, 3) RGB to grayscale through PIL, independently of our reader."""
    return np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in images])


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return torch.round((x * IMAGE_STD + IMAGE_MEAN) * 255).to(torch.uint8).numpy()


def test_column_major_file_comes_back_the_right_way_up(tmp_path):
    raw = np.zeros(3 * SIDE * SIDE, dtype=np.uint8)
    for c in range(3):  # a white pixel at row 5, column 70, written at the file offset the format defines
        raw[c * SIDE * SIDE + 70 * SIDE + 5] = 255
    raw[0 * SIDE * SIDE + 3 * SIDE + 80] = 255  # red only at row 80, column 3
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    (folder / "unlabeled_X.bin").write_bytes(raw.tobytes())
    gray = Stl10Split(folder, "unlabeled").gray(np.array([0]))[0]
    assert gray[5, 70] == 255 and gray[70, 5] == 0
    assert gray[80, 3] == np.asarray(Image.fromarray(np.array([[[255, 0, 0]]], np.uint8)).convert("L"))[0, 0] == 76
    assert int(gray.sum()) == 255 + 76


def test_training_views_are_flipped_or_plain_windows_of_the_right_images(tmp_path):
    images = write_stl10(tmp_path)
    source = Stl10(tmp_path, crop=64, train_split="train")
    gray = pil_gray(images["train"])
    x, y = source.batch(16, torch.Generator().manual_seed(1))
    assert x.shape == (16, 1, 64, 64) and x.dtype == torch.float32 and y.dtype == torch.long
    flips = 0
    for view, label in zip(to_uint8(x[:, 0]), y.tolist(), strict=True):
        candidates = [i for i in range(len(gray)) if i % 10 == label]  # labels cycle 1..10 in the fixture
        windows = [(im[t:t + 64, s:s + 64], f) for i in candidates for im in [gray[i]]
                   for t in range(33) for s in range(33) for f in (False, True)]
        found = [f for w, f in windows if np.array_equal(w[:, ::-1] if f else w, view)]
        assert found, "a view is not a 64x64 window of an image of its class"
        flips += found[0]
    assert 0 < flips < 16  # both plain and mirrored views occur


def test_unlabeled_training_has_no_labels_and_probes_use_centre_crops(tmp_path):
    images = write_stl10(tmp_path)
    source = Stl10(tmp_path, crop=64, train_split="unlabeled")
    assert (source.batch(4, torch.Generator().manual_seed(0))[1] == -1).all()
    (task,) = source.probe_tasks()
    assert task.name == "class" and task.kind == "pooled" and task.num_classes == 10
    assert len(task.train_inputs) == 20 and len(task.test_inputs) == 20
    assert [int(v) for v in task.train_labels] == [i % 10 for i in range(20)]
    assert np.array_equal(to_uint8(task.test_inputs[3][0]), pil_gray(images["test"])[3, 16:80, 16:80])


def test_colour_is_the_stored_rgb_normalised_with_the_train_splits_statistics(tmp_path):
    images = write_stl10(tmp_path)
    source = Stl10(tmp_path, crop=64, train_split="unlabeled", channels=3)
    train = images["train"].astype(np.float64) / 255
    assert np.allclose(source.mean.numpy(), train.mean(axis=(0, 1, 2)), atol=1e-6)
    assert np.allclose(source.std.numpy(), train.std(axis=(0, 1, 2)), atol=1e-6)
    (task,) = source.probe_tasks()
    crops = np.stack([np.asarray(Image.fromarray(im, "RGB").crop((16, 16, 80, 80))) for im in images["test"]])
    pixels = torch.stack(task.test_inputs) * source.std.view(3, 1, 1) + source.mean.view(3, 1, 1)
    assert np.array_equal(torch.round(pixels * 255).to(torch.uint8).movedim(1, -1).numpy(), crops)
    assert source.batch(4, torch.Generator().manual_seed(0))[0].shape == (4, 3, 64, 64)


def rgb96(preset: str, depth: int) -> Layers:
    """One conv on whole 96x96 RGB images."""
    return Layers([nn.Conv2d(3, 4, 3)], ["conv"], (3, 96, 96))


@pytest.mark.parametrize("network,shape", [("gim-vision", (2, 1, 64, 64)), ("toy-rgb96", (2, 3, 96, 96))])
def test_the_networks_input_decides_channels_and_crop(tmp_path, network, shape):
    write_stl10(tmp_path)
    register_network("toy-rgb96", modality="vision", reference_depth=1)(rgb96)
    try:
        cfg = resolve(RunConfig(model="supervised", network=network, modality="vision", data="stl10",
                                data_root=str(tmp_path), device="cpu", preset="tiny"))
        state = torch.get_rng_state()
        x, _ = make_source(cfg, labelled=True).batch(2, torch.Generator().manual_seed(0))
    finally:
        del NETWORKS["toy-rgb96"]
    assert x.shape == shape
    assert torch.equal(torch.get_rng_state(), state)  # asking the network its input (on meta) drew no number


@pytest.mark.parametrize("damage,message", [
    (lambda f: f.joinpath("train_X.bin").write_bytes(f.joinpath("train_X.bin").read_bytes()[:-100]), "truncated"),
    (lambda f: f.joinpath("test_y.bin").write_bytes(f.joinpath("test_y.bin").read_bytes()[:-1]), "19 labels"),
    (lambda f: f.joinpath("train_y.bin").write_bytes(bytes([11]) * 20), "outside 1..10"),
    (lambda f: f.joinpath("test_X.bin").unlink(), "files missing"),
    (lambda f: f.joinpath("unlabeled_X.bin").unlink(), "unlabeled_X.bin"),
])
def test_broken_files_stop_the_run_with_one_clear_message(tmp_path, capsys, damage, message):
    write_stl10(tmp_path / "data")
    damage(tmp_path / "data" / "stl10_binary")
    with pytest.raises(DataError, match=message):
        Stl10(tmp_path / "data", crop=64, train_split="unlabeled")
    code = main(["run", "--data", "stl10", "--data-root", str(tmp_path / "data"), "--modality", "vision",
                 "--device", "cpu", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("gimbench: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # no run folder for a run that could not start


def test_missing_dataset_names_the_layout_and_where_to_get_it(tmp_path, capsys):
    assert main(["data", "check", "--data", "stl10", "--data-root", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "no stl10_binary/ folder" in err and err.count("\n") == 1 and "shows the expected layout" in err
    assert "train_X.bin" in out and "cs.stanford.edu" in out  # data check prints the layout


def test_run_and_data_check_end_to_end(tmp_path, capsys):
    write_stl10(tmp_path / "data", {"train": 20, "test": 20})  # no unlabeled file: train on the train split
    assert main(["data", "check", "--data", "stl10", "--data-root", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "20 images (the release has 5000)" in out and "class1 2" in out and "missing" in out
    code = main(["run", "--data", "stl10", "--data-root", str(tmp_path / "data"), "--modality", "vision",
                 "--train-split", "train", "--preset", "tiny", "--device", "cpu", "--depth", "2", "--steps", "3",
                 "--warmup-steps", "1", "--profile-steps", "1", "--memory-steps", "0", "--batch-size", "4", "--quiet",
                 "--out", str(tmp_path), "--name", "run"])
    assert code == 0
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["data"] == {"name": "stl10", "workers": 0, "root": str(tmp_path / "data"), "train_split": "train",
                           "train_examples": 20, "channels": 1, "skipped": {}}
    assert len(doc["probe"]["class"]["per_module"]) == 2 and doc["probe"]["class"]["test_examples"] == 20
    assert set(doc["step"]["data_wait_ms"]) == {"median", "mean", "max", "share"}


@pytest.mark.parametrize("args,message", [
    (["--workers", "-1"], "--workers must be zero or more"),
    (["--train-split", "train"], "--train-split applies to --modality vision"),
    (["--modality", "vision", "--model", "supervised", "--train-split", "unlabeled"], "trains on labels"),
    (["--modality", "vision", "--data", "stl10"], "needs --data-root"),
])
def test_loading_flag_mistakes_are_one_line(tmp_path, capsys, args, message):
    assert main(["run", "--device", "cpu", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not list(tmp_path.iterdir())
