"""Tiny real-format datasets written by the tests: STL-10 binaries, CIFAR-10 pickles and a LibriSpeech tree with CPC
label files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import soundfile as sf

STL10_SIZE = 96


def stl10_bytes(images: np.ndarray) -> bytes:
    """(N, rows, cols, 3) uint8 RGB as the release stores them: per image, per channel, column after column."""
    return np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()


def write_stl10(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Writes ``root/stl10_binary`` with random images; returns split -> (N, 96, 96, 3) images written.

    Labels cycle through 1..10 in the labelled splits.
    """
    counts = counts or {"train": 20, "test": 20, "unlabeled": 24}
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in counts.items():
        images = rng.integers(0, 256, size=(n, STL10_SIZE, STL10_SIZE, 3), dtype=np.uint8)
        (folder / f"{split}_X.bin").write_bytes(stl10_bytes(images))
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes((np.arange(n) % 10 + 1).astype(np.uint8).tobytes())
        written[split] = images
    (folder / "class_names.txt").write_text("\n".join(f"class{c}" for c in range(1, 11)) + "\n")
    return written


CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, per_batch: int = 12, seed: int = 0, text_keys: bool = True) -> dict[str, np.ndarray]:
    """Writes ``root/cifar-10-batches-py`` as the python release holds it (pickle protocol 2, dicts with ``data``
    uint8 (N, 3072) of red, green, blue planes and ``labels`` a list of ints), ``per_batch`` random images per file;
    returns split -> (N, 32, 32, 3) images written, in file order. Labels cycle 0..9 over each split.
    ``text_keys``: keys as str (what the release's Python 2 strings unpickle to with torchvision's latin1 encoding);
    otherwise bytes (``b"data"``, as they unpickle with encoding="bytes")."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    key = (lambda k: k) if text_keys else (lambda k: k.encode())
    written = {}
    for split, files in CIFAR10_FILES.items():
        images = rng.integers(0, 256, size=(per_batch * len(files), 32, 32, 3), dtype=np.uint8)
        labels = np.arange(len(images)) % 10
        for i, name in enumerate(files):
            part = slice(i * per_batch, (i + 1) * per_batch)
            rows = np.ascontiguousarray(images[part].transpose(0, 3, 1, 2)).reshape(per_batch, 3072)
            doc = {key("batch_label"): f"{name} of 5", key("labels"): labels[part].tolist(), key("data"): rows,
                   key("filenames"): [f"image_{j}.png" for j in range(per_batch)]}
            (folder / name).write_bytes(pickle.dumps(doc, protocol=2))
        written[split] = images
    meta = {key("num_cases_per_batch"): per_batch, key("label_names"): CIFAR10_CLASSES, key("num_vis"): 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def kaldi_frames(samples: int) -> int:
    """Frames of a Kaldi alignment with 25 ms windows every 10 ms and snip-edges (what the phone file holds)."""
    return (samples - 400) // 160 + 1


def write_librispeech(
    root: Path, speakers: int = 3, utterances: int = 4, test: int = 1, seconds: float = 0.7, rate: int = 16000
) -> dict[str, list[str]]:
    """Writes a LibriSpeech train-clean-100 tree with split files and phone labels; returns split -> ids.

    Each speaker has one chapter of ``utterances`` FLAC files (16-bit, ``rate`` Hz) of slightly different
    lengths; the last ``test`` of them go to test_split.txt, the rest to train_split.txt. Every utterance
    gets Kaldi-length phone labels in 0..40.
    """
    rng = np.random.default_rng(0)
    labels_dir = Path(root) / "LibriSpeech100_labels_split"
    labels_dir.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "test": []}
    phone_lines = []
    for s in range(speakers):
        speaker, chapter = str(100 + s), str(2000 + s)
        folder = Path(root) / "LibriSpeech" / "train-clean-100" / speaker / chapter
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for u in range(utterances):
            uid = f"{speaker}-{chapter}-{u:04d}"
            samples = int(seconds * rate) + 160 * u + 37
            tone = np.sin(2 * np.pi * (150 + 40 * s) * np.arange(samples) / rate)
            sf.write(folder / f"{uid}.flac", (0.3 * tone + 0.01 * rng.standard_normal(samples)).astype(np.float32),
                     rate, subtype="PCM_16")
            lines.append(f"{uid} WORDS OF UTTERANCE {u}")
            splits["test" if u >= utterances - test else "train"].append(uid)
            labels = rng.integers(0, 41, size=kaldi_frames(int(samples * 16000 / rate)))
            phone_lines.append(" ".join([uid, *map(str, labels)]))
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    for split, ids in splits.items():
        (labels_dir / f"{split}_split.txt").write_text("\n".join(ids) + "\n")
    (labels_dir / "converted_aligned_phones.txt").write_text("\n".join(phone_lines) + "\n")
    return splits


def flac_path(root: Path, uid: str) -> Path:
    """Where ``write_librispeech`` put utterance ``uid``."""
    speaker, chapter, _ = uid.split("-")
    return Path(root) / "LibriSpeech" / "train-clean-100" / speaker / chapter / f"{uid}.flac"
