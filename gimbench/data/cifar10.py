"""CIFAR-10 from the python release on disk (never downloaded), read whole into memory (180 MB).

``<root>/cifar-10-batches-py/`` holds ``data_batch_1`` .. ``data_batch_5`` (the train split, 10,000 images each)
and ``test_batch`` (10,000): pickled dicts whose ``data`` is uint8 (N, 3072), each row the red, green and blue
32 x 32 planes one after the other, rows top to bottom, and whose ``labels`` are N integers 0..9;
``batches.meta`` names the classes (``label_names``).

Why the pickles are read here and not through ``torchvision.datasets.CIFAR10(root, download=False)``: that class
refuses every folder whose files lack the release's MD5s, so a sample in the same format (the tests' fixture, a
subset) could not be read at all and the tests could not run the reader real runs use; and its errors ("Dataset
not found or corrupted", a bare KeyError) do not say which file is wrong. So every file is unpickled here, by an
unpickler that builds nothing but numpy arrays (a pickle can run any code), and checked for its keys, shapes and
labels; and where the folder is the release (every batch holds its 10,000 images), every file's MD5 is checked
against torchvision's own list with torchvision's ``check_integrity``: a release torchvision would refuse is
refused here too. A smaller sample is read without MD5s, and says so (``md5_checked``).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gimbench.data.corpus import Batch, random_views
from gimbench.data.problems import DataError, Skips
from gimbench.data.tasks import ProbeTask
from gimbench.data.views import RGB, centre, channel_stats, channel_views, normalise_channels, with_channels
from gimbench.errors import one_line

# The release's names, as torchvision's CIFAR10 has them (a test checks); its MD5s are read from torchvision when a
# folder is checked (``release_md5s``): importing torchvision costs about a second, which every other run would pay.
FOLDER = "cifar-10-batches-py"
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
META = "batches.meta"
RELEASE_BATCH = 10000  # images in each batch file of the release
SIDE = 32
IMAGE_BYTES = 3 * SIDE * SIDE
NUM_CLASSES = 10
PAD = 4  # training views: a random 32x32 window of the image zero-padded by 4, as He et al. and InfoPro train
PROBE_TRAIN = 10000  # the class probe trains on the first 10,000 train images (data_batch_1 of the release)
LAYOUT = (
    "expected layout: PATH/cifar-10-batches-py/ holding data_batch_1 .. data_batch_5, test_batch and batches.meta; "
    "get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into PATH "
    "(gimbench never downloads)"
)
# What a batch's pickle may ask for: numpy arrays, as the release's Python 2 pickles and Python 3 ones build them.
ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
           ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
           ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("__builtin__", "bytes"),
           ("builtins", "bytes")}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, numbers, strings and numpy arrays, and refuses anything else."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which no CIFAR-10 file holds")


def batches_folder(root: Path) -> Path:
    """``root/cifar-10-batches-py`` with every file of the layout, or ``DataError`` naming what is missing."""
    folder = Path(root) / FOLDER
    if not folder.is_dir():
        inside = (Path(root) / META).exists()
        hint = " (it holds the batch files itself: pass its parent folder)" if inside else ""
        raise DataError(f"--data-root {root}: no {FOLDER}/ folder{hint}", LAYOUT, "cifar10")
    missing = [folder / n for n in (*SPLITS["train"], *SPLITS["test"], META) if not (folder / n).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 files missing: {', '.join(map(str, missing))}", LAYOUT, "cifar10")
    return folder


def load_pickle(path: Path) -> dict:
    """The dict pickled at ``path`` (keys as str, as torchvision reads them), or ``DataError``."""
    try:
        with path.open("rb") as f:
            doc = _ArraysOnly(f, encoding="latin1").load()
    except OSError as e:
        raise DataError(f"{path} cannot be read ({type(e).__name__}: {e.strerror})") from None
    except Exception as e:  # a truncated or foreign file fails in many ways (EOFError, UnpicklingError, ValueError...)
        raise DataError(f"{path} is not a CIFAR-10 pickle ({one_line(e)}); re-extract "
                        "cifar-10-python.tar.gz", LAYOUT, "cifar10") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path} holds a {type(doc).__name__}, not the dict of a CIFAR-10 file; re-extract "
                        "cifar-10-python.tar.gz", LAYOUT, "cifar10")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in doc.items()}


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's images, uint8 (N, 3, 32, 32), and labels, int64 (N,), or ``DataError``."""
    doc = load_pickle(path)
    data, labels = doc.get("data"), doc.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' is {found}, not uint8 rows of {IMAGE_BYTES} bytes (3 x 32 x 32); "
                        "re-extract cifar-10-python.tar.gz", LAYOUT, "cifar10")
    if not len(data):
        raise DataError(f"{path} holds no images; re-extract cifar-10-python.tar.gz", LAYOUT, "cifar10")
    labels = np.asarray(labels) if isinstance(labels, list | np.ndarray) else np.array(None)
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: 'labels' must be {len(data)} integers, one per image; re-extract "
                        "cifar-10-python.tar.gz", LAYOUT, "cifar10")
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if len(bad):
        raise DataError(f"{path}: label {labels[bad[0]]} at image {bad[0]} is outside 0..{NUM_CLASSES - 1}")
    return data.reshape(-1, 3, SIDE, SIDE), labels.astype(np.int64)


def class_names(folder: Path) -> list[str]:
    """The ten ``label_names`` of ``batches.meta``, or ``DataError``."""
    names = load_pickle(folder / META).get("label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES or not all(isinstance(n, str | bytes) for n in names):
        raise DataError(f"{folder / META}: 'label_names' must be {NUM_CLASSES} names; re-extract "
                        "cifar-10-python.tar.gz", LAYOUT, "cifar10")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def release_md5s() -> dict[str, str]:
    """Every release file's MD5, torchvision's list."""
    from torchvision.datasets import CIFAR10

    return {**dict(CIFAR10.train_list), **dict(CIFAR10.test_list), CIFAR10.meta["filename"]: CIFAR10.meta["md5"]}


def check_md5(folder: Path) -> None:
    """``DataError`` naming every file whose MD5 is not the release's (torchvision's list and check)."""
    from torchvision.datasets.utils import check_integrity

    bad = [name for name, md5 in release_md5s().items() if not check_integrity(str(folder / name), md5)]
    if bad:
        raise DataError(f"{', '.join(str(folder / n) for n in bad)}: MD5 differs from the CIFAR-10 release's "
                        "(damaged or altered, in a folder whose batch files hold the release's 10,000 images each); "
                        "re-extract cifar-10-python.tar.gz")


@dataclass(frozen=True)
class Release:
    """Both splits in memory: images uint8 (N, 3, 32, 32) and labels int64 (N,) per split, the class names, the
    images of each batch file, and whether the MD5s were checked (only the full release has them)."""

    folder: Path
    images: dict[str, np.ndarray]
    labels: dict[str, torch.Tensor]
    names: list[str]
    per_file: dict[str, int]
    md5_checked: bool


def read_release(root: Path) -> Release:
    """Every file of ``root/cifar-10-batches-py`` read and checked; ``DataError`` if one cannot be used."""
    folder = batches_folder(root)
    names = class_names(folder)
    images, labels, per_file = {}, {}, {}
    for split, files in SPLITS.items():
        batches = [read_batch(folder / name) for name in files]
        per_file.update({name: len(x) for name, (x, _) in zip(files, batches, strict=True)})
        images[split] = np.concatenate([x for x, _ in batches])
        labels[split] = torch.from_numpy(np.concatenate([y for _, y in batches]))
    release = all(n == RELEASE_BATCH for n in per_file.values())
    if release:
        check_md5(folder)
    return Release(folder, images, labels, names, per_file, release)


def train_statistics(release: Release, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (0..1 scale) of the train split as ``channels`` channels, what the images are
    normalised with: computed exactly, so any channel count and any sample of the format gets its own."""
    train = release.images["train"]
    return channel_stats(with_channels(train[s:s + RELEASE_BATCH], channels)
                         for s in range(0, len(train), RELEASE_BATCH))


class Cifar10:
    """Training views of the train split (padded random crops, random flips); the class probe trains on its first
    ``PROBE_TRAIN`` images and tests on the test split (centre crops).

    Args:
        root: The folder holding ``cifar-10-batches-py/``.
        crop: Side of the training and probe crops (32 for the CIFAR networks).
        channels: 3 (RGB) or 1 (grayscale): what the network reads (``views.image_input``).
    """

    num_classes = NUM_CLASSES

    def __init__(self, root: Path, crop: int, channels: int = RGB) -> None:
        self.root, self.crop, self.channels = Path(root), crop, channels
        self.release = read_release(root)
        self.images, self.labels = self.release.images, self.release.labels
        self.mean, self.std = train_statistics(self.release, channels)
        self.skips = Skips()  # CIFAR-10 problems are errors, never skips

    def batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Random crops of the zero-padded images with random horizontal flips: float32 ``(B, channels, crop,
        crop)`` and labels ``(B,)``."""
        count = len(self.labels["train"])
        idx, top, left, flip = random_views(count, SIDE + 2 * PAD, batch_size, self.crop, generator)
        padded = F.pad(with_channels(self.images["train"][idx.numpy()], self.channels), (PAD, PAD, PAD, PAD))
        views = channel_views(padded, top, left, flip, self.crop)
        return Batch(normalise_channels(views, self.mean, self.std), self.labels["train"][idx])

    def _centred(self, split: str, count: int) -> list[torch.Tensor]:
        images = centre(with_channels(self.images[split][:count], self.channels), self.crop)
        return list(normalise_channels(images, self.mean, self.std))

    def probe_tasks(self) -> list[ProbeTask]:
        test = len(self.labels["test"])
        train = list(self.labels["train"][:PROBE_TRAIN])
        return [ProbeTask("class", "pooled", self._centred("train", PROBE_TRAIN), train, self._centred("test", test),
                          list(self.labels["test"]), NUM_CLASSES)]

    def describe(self) -> dict:
        return {"root": str(self.root), "train_split": "train", "train_examples": len(self.labels["train"]),
                "channels": self.channels, "md5_checked": self.release.md5_checked}
