"""Samples/s of each real-data reader alone, on synthetic files of realistic size in the real formats.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_data_readers.py`` (a few seconds of
setup, then pytest-benchmark's table). Each benchmark draws one training batch at the paper preset with
``source.batch`` in this process (no loader workers), so samples/s is what one reader process delivers;
``--workers N`` runs N such readers. Files are in the page cache after the setup: this measures decoding
and cropping, not a cold disk.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from data_fixtures import stl10_bytes  # noqa: E402

from gimbench.data.librispeech import LibriSpeech  # noqa: E402
from gimbench.data.librispeech_index import load_index  # noqa: E402
from gimbench.data.stl10 import Stl10  # noqa: E402
from gimbench.models.presets import PRESETS  # noqa: E402

AUDIO, VISION = PRESETS["paper"]["audio"], PRESETS["paper"]["vision"]
UNLABELED = 4000  # images (110 MB); the release has 100,000
UTTERANCES, SECONDS = 60, 12.7  # train-clean-100 averages 12.7 s per utterance


@pytest.fixture(scope="module")
def stl10_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stl10")
    folder = root / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in {"train": 50, "test": 50, "unlabeled": UNLABELED}.items():
        images = rng.integers(0, 256, size=(n, 96, 96, 3), dtype=np.uint8)
        (folder / f"{split}_X.bin").write_bytes(stl10_bytes(images))
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes((np.arange(n) % 10 + 1).astype(np.uint8).tobytes())
    return root


@pytest.fixture(scope="module")
def librispeech_root(tmp_path_factory) -> Path:
    """Utterances of speech-like length; coloured noise so that FLAC compresses about as much as speech."""
    root = tmp_path_factory.mktemp("librispeech")
    rng = np.random.default_rng(0)
    ids = []
    for i in range(UTTERANCES):
        speaker, chapter = str(100 + i % 20), str(1000 + i % 20)
        folder = root / "LibriSpeech" / "train-clean-100" / speaker / chapter
        folder.mkdir(parents=True, exist_ok=True)
        noise = np.cumsum(rng.standard_normal(int(SECONDS * 16000)))
        wave = 0.3 * (noise - np.convolve(noise, np.ones(64) / 64, mode="same")) / 30
        uid = f"{speaker}-{chapter}-{i:04d}"
        sf.write(folder / f"{uid}.flac", np.clip(wave, -1, 1).astype(np.float32), 16000, subtype="PCM_16")
        ids.append(uid)
    labels = root / "LibriSpeech100_labels_split"
    labels.mkdir()
    (labels / "train_split.txt").write_text("\n".join(ids) + "\n")
    (labels / "test_split.txt").write_text("\n".join(ids[:20]) + "\n")
    (labels / "converted_aligned_phones.txt").write_text("".join(f"{u} 0 1 2\n" for u in ids))
    return root


def report(benchmark, batch: int) -> None:
    benchmark.extra_info["samples_per_second"] = batch / benchmark.stats.stats.mean


def test_stl10_unlabeled_random_crops(benchmark, stl10_root):
    source = Stl10(stl10_root, VISION.crop, "unlabeled")
    generator = torch.Generator().manual_seed(0)
    x, _ = benchmark(source.batch, VISION.batch_size, generator)
    assert x.shape == (VISION.batch_size, 1, VISION.crop, VISION.crop)
    report(benchmark, VISION.batch_size)


def test_librispeech_random_crops(benchmark, librispeech_root):
    source = LibriSpeech(librispeech_root, AUDIO.crop_samples)
    generator = torch.Generator().manual_seed(0)
    x, _ = benchmark(source.batch, AUDIO.batch_size, generator)
    assert x.shape == (AUDIO.batch_size, 1, AUDIO.crop_samples) and not source.skips
    report(benchmark, AUDIO.batch_size)


def test_librispeech_index_per_file(benchmark, librispeech_root):
    """Indexing (FLAC headers, split and phone files): the start-up cost of a run, per utterance."""
    index = benchmark(load_index.__wrapped__, librispeech_root)
    assert len(index.splits["train"]) == UTTERANCES
    benchmark.extra_info["ms_per_utterance"] = benchmark.stats.stats.mean / UTTERANCES * 1e3
