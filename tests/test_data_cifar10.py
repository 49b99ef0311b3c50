"""CIFAR-10 from the python release: the same pixels and labels as torchvision's reader, training views, probes, the
MD5 check of the full release, broken folders, and a run on a fixture written in the real format."""

from __future__ import annotations

import hashlib
import json
import pickle
import re

import numpy as np
import pytest
import torch
from data_fixtures import CIFAR10_FILES, write_cifar10
from PIL import Image
from torch import nn
from torchvision.datasets import CIFAR10

from gimbench import ConfigError, RunConfig, run
from gimbench.cli import main
from gimbench.config import resolve
from gimbench.data import cifar10, make_source
from gimbench.data.cifar10 import Cifar10, read_release
from gimbench.data.problems import DataError
from gimbench.models import NETWORKS, Layers, register_network

TOY = "toy-rgb32"
FOLDER = "cifar-10-batches-py"


def toy_rgb(preset: str, depth: int) -> Layers:
    """Strided 3x3 convs on 32x32 RGB images."""
    widths = (3, 8, 16)
    layers = [nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1), nn.ReLU())
              for i in range(depth)]
    return Layers(layers, [f"conv{i + 1}" for i in range(depth)], (3, 32, 32))


@pytest.fixture(scope="module")
def toy():
    register_network(TOY, modality="vision", reference_depth=2)(toy_rgb)
    yield TOY
    del NETWORKS[TOY]


def fixture_md5s(monkeypatch, folder) -> None:
    """torchvision's and our MD5 lists hold the fixture's own hashes, as they hold the release's."""
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5[n]] for n in CIFAR10_FILES["train"]])
    monkeypatch.setattr(CIFAR10, "test_list", [[n, md5[n]] for n in CIFAR10_FILES["test"]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})


def unnormalise(x: torch.Tensor, source: Cifar10) -> np.ndarray:
    """Float (..., C, H, W) views back to uint8 pixels, (..., H, W, C)."""
    pixels = (x * source.std.view(-1, 1, 1) + source.mean.view(-1, 1, 1)) * 255
    return torch.round(pixels).to(torch.uint8).movedim(-3, -1).numpy()


@pytest.mark.parametrize("text_keys", [True, False])
def test_pixels_and_labels_are_torchvisions(tmp_path, monkeypatch, text_keys):
    write_cifar10(tmp_path, text_keys=True)  # torchvision reads the str keys the release unpickles to
    fixture_md5s(monkeypatch, tmp_path / FOLDER)
    # Ours also reads the bytes keys of a pickle written with b"data" (the same images: the same seed).
    release = read_release(tmp_path if text_keys else write_cifar10(tmp_path / "b", text_keys=False) and tmp_path / "b")
    for split, train in (("train", True), ("test", False)):
        reference = CIFAR10(str(tmp_path), train=train, download=False)
        assert np.array_equal(release.images[split].transpose(0, 2, 3, 1), reference.data)
        assert release.labels[split].tolist() == reference.targets
    assert release.names == CIFAR10(str(tmp_path), train=False, download=False).classes


def test_training_views_are_padded_windows_of_images_of_their_class(tmp_path):
    images = write_cifar10(tmp_path)["train"]
    source = Cifar10(tmp_path, crop=32)
    x, y = source.batch(12, torch.Generator().manual_seed(2))
    assert x.shape == (12, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    flips = 0
    for view, label in zip(unnormalise(x, source), y.tolist(), strict=True):
        windows = [(padded[i, t:t + 32, s:s + 32], f) for i in range(label, len(images), 10)
                   for t in range(9) for s in range(9) for f in (False, True)]
        found = [f for w, f in windows if np.array_equal(w[:, ::-1] if f else w, view)]
        assert found, "a view is not a padded 32x32 window of an image of its class"
        flips += found[0]
    assert 0 < flips < 12


def test_normalised_with_the_train_splits_own_statistics_and_probes_on_whole_images(tmp_path):
    images = write_cifar10(tmp_path)
    source = Cifar10(tmp_path, crop=32)
    train = images["train"].astype(np.float64) / 255
    assert np.allclose(source.mean.numpy(), train.mean(axis=(0, 1, 2)), atol=1e-6)
    assert np.allclose(source.std.numpy(), train.std(axis=(0, 1, 2)), atol=1e-6)
    (task,) = source.probe_tasks()
    assert task.name == "class" and task.num_classes == 10 and len(task.train_inputs) == 60
    assert np.array_equal(unnormalise(torch.stack(task.test_inputs), source), images["test"])
    assert [int(v) for v in task.test_labels] == [i % 10 for i in range(12)]


def test_grayscale_is_pils_luma(tmp_path):
    images = write_cifar10(tmp_path)["test"]
    source = Cifar10(tmp_path, crop=32, channels=1)
    (task,) = source.probe_tasks()
    gray = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in images])
    assert np.array_equal(unnormalise(torch.stack(task.test_inputs), source)[..., 0], gray)


def test_full_release_is_checked_against_torchvisions_md5s(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    monkeypatch.setattr(cifar10, "RELEASE_BATCH", 12)  # the fixture's files now count as the release's
    with pytest.raises(DataError, match="MD5 differs from the CIFAR-10 release's"):
        read_release(tmp_path)  # torchvision's list holds the real release's MD5s
    fixture_md5s(monkeypatch, tmp_path / FOLDER)
    assert read_release(tmp_path).md5_checked


def rewrite(folder, name: str, change) -> None:
    path = folder / name
    doc = pickle.loads(path.read_bytes(), encoding="latin1")
    path.write_bytes(pickle.dumps(change(doc), protocol=2))


@pytest.mark.parametrize("damage,message", [
    (lambda f: (f / "data_batch_3").unlink(), "CIFAR-10 files missing"),
    (lambda f: (f / "test_batch").write_bytes((f / "test_batch").read_bytes()[:-500]), "is not a CIFAR-10 pickle"),
    (lambda f: rewrite(f, "data_batch_1", lambda d: {k: v for k, v in d.items() if k != "data"}), "'data' is NoneType"),
    (lambda f: rewrite(f, "data_batch_2", lambda d: {**d, "data": d["data"][:, :100]}), "not uint8 rows of 3072"),
    (lambda f: rewrite(f, "data_batch_4", lambda d: {**d, "labels": d["labels"][:-1]}), "must be 12 integers"),
    (lambda f: rewrite(f, "test_batch", lambda d: {**d, "labels": [10] * 12}), "label 10 at image 0"),
    (lambda f: rewrite(f, "test_batch", lambda d: {**d, "data": d["data"][:0], "labels": []}), "holds no images"),
    (lambda f: rewrite(f, "batches.meta", lambda d: {**d, "label_names": ["a"]}), "'label_names' must be 10"),
    (lambda f: (f / "data_batch_5").write_bytes(pickle.dumps([1, 2, 3], protocol=2)), "holds a list"),
    (lambda f: (f / "data_batch_5").write_bytes(pickle.dumps({"data": print}, protocol=2)),
     "print, which no CIFAR-10 file holds"),
])
def test_broken_folders_end_in_one_line(tmp_path, capsys, damage, message):
    write_cifar10(tmp_path)
    damage(tmp_path / FOLDER)
    assert main(["data", "check", "--data", "cifar10", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gimbench: error:") and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_folder_prints_the_layout(tmp_path, capsys):
    assert main(["data", "check", "--data", "cifar10", "--data-root", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "no cifar-10-batches-py/ folder" in err and err.count("\n") == 1
    assert "data_batch_1" in out and "cs.toronto.edu" in out


@pytest.mark.parametrize("options,message", [
    (dict(train_split="unlabeled"), "--data cifar10 has no unlabeled split"),
    (dict(model="supervised"), "network 'gim-vision' reads inputs of shape (1, 64, 64)"),
])
def test_what_cifar10_cannot_give_is_refused(tmp_path, options, message):
    write_cifar10(tmp_path)
    cfg = RunConfig(**{"data": "cifar10", "data_root": str(tmp_path), "modality": "vision", "device": "cpu",
                       "preset": "tiny", **options})
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_source(resolve(cfg), labelled=True)


def test_data_check_and_a_run_on_the_real_format(tmp_path, capsys, toy):
    train = write_cifar10(tmp_path / "data")["train"] / 255
    assert main(["data", "check", "--data", "cifar10", "--data-root", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "60 images (the release has 50000)" in out and "airplane 6" in out and "not checked" in out
    assert ", ".join(f"{m:.4f}" for m in train.mean(axis=(0, 1, 2))) in out  # the RGB mean runs normalise with
    result = run(RunConfig(model="greedy-supervised", network=toy, modality="vision", data="cifar10",
                           data_root=str(tmp_path / "data"), preset="tiny", device="cpu", steps=2, warmup_steps=1,
                           profile_steps=1, memory_steps=0, batch_size=4, quiet=True, out=str(tmp_path), name="run"))
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["data"] == {"name": "cifar10", "workers": 0, "root": str(tmp_path / "data"), "train_split": "train",
                           "train_examples": 60, "channels": 3, "md5_checked": False, "skipped": {}}
    assert [m.name for m in result.modules] == ["conv1", "conv2"]
    assert doc["probe"]["class"]["test_examples"] == 12 and len(doc["probe"]["class"]["per_module"]) == 2


def test_the_release_names_are_torchvisions():
    assert CIFAR10.base_folder == cifar10.FOLDER and CIFAR10.meta["filename"] == cifar10.META
    assert {"train": [n for n, _ in CIFAR10.train_list], "test": [n for n, _ in CIFAR10.test_list]} == cifar10.SPLITS
