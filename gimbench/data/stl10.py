"""STL-10 from the binary release on disk (never downloaded), read through numpy memory maps.

``<root>/stl10_binary/{train,test,unlabeled}_X.bin`` hold uint8 images back to back, 3 x 96 x 96 each,
every channel stored column-major; ``{train,test}_y.bin`` one uint8 label 1..10 per image. A network with one
input channel (the paper's) reads grayscale, PIL's integer luma formula (what the reference's
``transforms.Grayscale`` does on PIL images), normalised with the reference's statistics; a network with three
reads the colour the release stores, normalised per channel with the labelled train split's statistics
(``gimbench.data.views``).
A truncated or inconsistent file stops the run with ``DataError``: using part of a split would change
the benchmark silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gimbench.data.corpus import IMAGE_MEAN, IMAGE_SIZE, IMAGE_STD, Batch, random_views
from gimbench.data.problems import DataError, Skips
from gimbench.data.tasks import ProbeTask
from gimbench.data.views import GRAY, centre, channel_stats, channel_views, normalise_channels, to_gray

FOLDER = "stl10_binary"
FILES = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin"),
         "unlabeled": ("unlabeled_X.bin", None)}
OFFICIAL_COUNTS = {"train": 5000, "test": 8000, "unlabeled": 100000}
NUM_CLASSES = 10
CLASS_NAMES = "class_names.txt"  # optional: the classes' names, one a line
IMAGE_BYTES = 3 * IMAGE_SIZE * IMAGE_SIZE
CHUNK = 2048  # images converted at a time when a whole split is read
LAYOUT = (
    "expected layout: PATH/stl10_binary/ holding train_X.bin, train_y.bin, test_X.bin, test_y.bin, "
    "unlabeled_X.bin (and class_names.txt); get stl10_binary.tar.gz from https://cs.stanford.edu/~acoates/stl10/ "
    "and extract it into PATH (gimbench never downloads)"
)


def binary_folder(root: Path) -> Path:
    """``root/stl10_binary``, or ``DataError`` with the expected layout."""
    folder = Path(root) / FOLDER
    if folder.is_dir():
        return folder
    hint = " (it holds the .bin files itself: pass its parent folder)" if (Path(root) / "train_X.bin").exists() else ""
    raise DataError(f"--data-root {root}: no {FOLDER}/ folder{hint}", LAYOUT, "stl10")


def class_names(folder: Path) -> list[str] | None:
    """The ten names of ``class_names.txt`` (one a line, as the release has them), ``None`` where the optional
    file is absent, or ``DataError`` for one that is not ten names of UTF-8 text."""
    path = folder / CLASS_NAMES
    if not path.is_file():
        return None
    try:
        names = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path} cannot be read as UTF-8 text ({type(e).__name__}); re-extract "
                        "stl10_binary.tar.gz or remove the file (it is optional)") from None
    if len(names) != NUM_CLASSES:
        raise DataError(f"{path} names {len(names)} classes, not {NUM_CLASSES} (one a line); re-extract "
                        "stl10_binary.tar.gz or remove the file (it is optional)")
    return names


def check_files(folder: Path, splits: list[str]) -> None:
    """``DataError`` naming every missing file of ``splits`` at once."""
    missing = [folder / name for split in splits for name in FILES[split] if name and not (folder / name).is_file()]
    if missing:
        raise DataError(f"STL-10 files missing: {', '.join(map(str, missing))}", LAYOUT, "stl10")


class Stl10Split:
    """One split of the binary release: images through a memory map, labels in memory.

    Attributes:
        name: "train", "test" or "unlabeled".
        count: Number of images.
        labels: Int64 ``(count,)`` class index 0..9, or -1 for the unlabeled split.
    """

    def __init__(self, folder: Path, name: str) -> None:
        x_name, y_name = FILES[name]
        self.name, self.path = name, folder / x_name
        try:
            self._open(folder / y_name if y_name else None)
        except OSError as e:
            raise DataError(f"{e.filename or self.path} cannot be read ({type(e).__name__}: {e.strerror})") from None

    def _open(self, y_path: Path | None) -> None:
        size = self.path.stat().st_size
        if size == 0 or size % IMAGE_BYTES:
            raise DataError(f"{self.path} is truncated or not an STL-10 image file: {size} bytes is not a positive "
                            f"multiple of {IMAGE_BYTES} (3 x 96 x 96); re-extract stl10_binary.tar.gz", LAYOUT,
                            "stl10")
        self.count = size // IMAGE_BYTES
        self._pixels = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.count, 3, IMAGE_SIZE, IMAGE_SIZE))
        self.labels = self._read_labels(y_path) if y_path else torch.full((self.count,), -1, dtype=torch.long)

    def _read_labels(self, path: Path) -> torch.Tensor:
        raw = np.fromfile(path, dtype=np.uint8)
        if len(raw) != self.count:
            raise DataError(f"{path} has {len(raw)} labels for {self.count} images in {self.path.name} "
                            f"(truncated download?); re-extract stl10_binary.tar.gz", LAYOUT, "stl10")
        bad = np.flatnonzero((raw < 1) | (raw > NUM_CLASSES))
        if len(bad):
            raise DataError(f"{path}: label {raw[bad[0]]} at image {bad[0]} is outside 1..{NUM_CLASSES}")
        return torch.from_numpy(raw.astype(np.int64) - 1)

    def __len__(self) -> int:
        return self.count

    def gray(self, idx: np.ndarray) -> torch.Tensor:
        """Images ``idx`` as uint8 ``(len(idx), 96, 96)`` grayscale, rows top to bottom."""
        # Each channel is stored column-major: luma is computed in the file's (column, row) order, where the
        # arrays are contiguous, and the result is transposed to (row, column).
        return torch.from_numpy(to_gray(np.asarray(self._pixels[idx])).transpose(0, 2, 1))

    def pixels(self, idx: np.ndarray, channels: int) -> torch.Tensor:
        """Images ``idx`` as uint8 ``(len(idx), channels, 96, 96)``: grayscale or RGB, rows top to bottom."""
        if channels == GRAY:
            return self.gray(idx).unsqueeze(1)
        return torch.from_numpy(np.ascontiguousarray(np.asarray(self._pixels[idx]).transpose(0, 1, 3, 2)))

    def chunks(self, channels: int) -> list[torch.Tensor]:
        """The whole split in memory as ``pixels`` of ``CHUNK`` images at a time."""
        return [self.pixels(np.arange(s, min(s + CHUNK, self.count)), channels) for s in range(0, self.count, CHUNK)]


class Stl10:
    """Training views of one STL-10 split; the class probe trains on train and tests on test (centre crops).

    Args:
        root: The folder holding ``stl10_binary/``.
        crop: Side of the training and probe crops.
        train_split: "unlabeled" (self-supervised methods, as in the paper) or "train".
        channels: 1 (grayscale, the paper's network) or 3 (RGB): what the network reads (``views.image_input``).
    """

    num_classes = NUM_CLASSES

    def __init__(self, root: Path, crop: int, train_split: str, channels: int = GRAY) -> None:
        folder = binary_folder(root)
        check_files(folder, sorted({"train", "test", train_split}))
        self.root, self.crop, self.train_split, self.channels = Path(root), crop, train_split, channels
        # Every split is opened (and checked) now, so a broken file stops the run before training, not after.
        self.splits = {split: Stl10Split(folder, split) for split in sorted({"train", "test", train_split})}
        self.train = self.splits[train_split]
        self.mean, self.std = self._statistics()
        self.skips = Skips()  # STL-10 problems are errors, never skips

    def _statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Grayscale: the reference's mean and std. Colour, which the reference never trained on: the labelled train
        split's per channel (the unlabeled split is 20 times larger to read for the same purpose)."""
        if self.channels == GRAY:
            return torch.tensor([IMAGE_MEAN]), torch.tensor([IMAGE_STD])
        return channel_stats(self.splits["train"].chunks(self.channels))

    def batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Random crops with random horizontal flips: float32 ``(B, channels, crop, crop)`` and labels ``(B,)``."""
        idx, top, left, flip = random_views(len(self.train), IMAGE_SIZE, batch_size, self.crop, generator)
        views = channel_views(self.train.pixels(idx.numpy(), self.channels), top, left, flip, self.crop)
        return Batch(normalise_channels(views, self.mean, self.std), self.train.labels[idx])

    def probe_tasks(self) -> list[ProbeTask]:
        train_x, test_x = ([normalise_channels(centre(c, self.crop), self.mean, self.std)
                            for c in self.splits[s].chunks(self.channels)] for s in ("train", "test"))
        return [ProbeTask("class", "pooled", list(torch.cat(train_x)), list(self.splits["train"].labels),
                          list(torch.cat(test_x)), list(self.splits["test"].labels), NUM_CLASSES)]

    def describe(self) -> dict:
        return {"root": str(self.root), "train_split": self.train_split, "train_examples": len(self.train),
                "channels": self.channels}
