"""Datasets, registered by ``--data`` name. Each yields training batches and probe tasks.

A source is built for a resolved config. ``batch`` hands out training inputs as float32 tensors —
audio (B, 1, samples), vision (B, channels, crop, crop) as the network reads them (the embedded images in
grayscale or RGB at any size) — with their labels (speaker, class; -1 where the split is unlabelled), drawn
with the caller's generator so a run is reproducible from its seed. ``probe_tasks`` gives the frozen-feature
evaluation data. Real datasets (``stl10``, ``cifar10``, ``librispeech``) are read from ``--data-root`` and never
downloaded; what they leave out is counted in ``skips``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from gimbench.data.corpus import IMAGE_SIZE, Batch
from gimbench.data.problems import Skips
from gimbench.data.tasks import ProbeTask
from gimbench.errors import ConfigError
from gimbench.models import network_entry
from gimbench.models.presets import PRESETS
from gimbench.registry import Registry

DATASETS = Registry("dataset")
CORPUS_SEED = 0  # the embedded corpus is one fixed dataset; --seed varies the run, not the data
# Utterances per speaker. Training sees 32 per speaker: with 8, self-supervised training fitted the few
# utterances it saw and trained GRU features fell below random ones on the speaker probe (measured:
# gim 13% vs random 15% at the GRU, tiny preset, 300 steps). The phone probe trains on the first
# PHONE_PROBE_UTTERANCES of each speaker, which keeps a run's probes to seconds.
UTTERANCES = {"train": 32, "test": 8}
PHONE_PROBE_UTTERANCES = 8


class Source(Protocol):
    """What the trainer and the probes need of a dataset."""

    num_classes: int  # labels of training batches (speakers, classes)
    skips: Skips  # what was left out, by reason (always empty for the embedded data)

    def batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        """A training batch: inputs and labels."""
        ...

    def probe_tasks(self) -> list[ProbeTask]:
        """The probe tasks of this dataset, train and test splits."""
        ...

    def describe(self) -> dict:
        """Where the data came from and what training draws from, for results.json's ``data`` block."""
        ...


@functools.cache
def _audio(split: str):
    from gimbench.data.synthetic import make_audio_corpus

    return make_audio_corpus(seed=CORPUS_SEED, split=split, utterances_per_speaker=UTTERANCES[split])


@functools.cache
def _images(split: str, colour: bool = False):
    from gimbench.data.synthetic import make_image_set

    return make_image_set(seed=CORPUS_SEED, split=split, colour=colour)


class SyntheticAudio:
    """Random crops of the embedded speech-like corpus (see ``gimbench.data.synthetic``)."""

    def __init__(self, crop_samples: int) -> None:
        self.corpus = _audio("train")
        self.crop_samples = crop_samples
        self.num_classes = self.corpus.num_speakers
        self.skips = Skips()

    def batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        return Batch(*self.corpus.random_crops(batch_size, self.crop_samples, generator))

    def probe_tasks(self) -> list[ProbeTask]:
        train, test = _audio("train"), _audio("test")
        waves = [[w.unsqueeze(0) for w in c.waves] for c in (train, test)]
        speaker = ProbeTask("speaker", "pooled", waves[0], list(train.speakers), waves[1], list(test.speakers),
                            train.num_speakers)
        subset = [i for i in range(len(train.waves)) if i % UTTERANCES["train"] < PHONE_PROBE_UTTERANCES]
        phone = ProbeTask("phone", "frames", [waves[0][i] for i in subset], [train.phones[i] for i in subset],
                          waves[1], test.phones, train.num_phones)
        return [speaker, phone]

    def describe(self) -> dict:
        return {"train_split": "train", "train_examples": len(self.corpus.waves)}


class SyntheticVision:
    """Random crops with flips of the embedded images: the unlabeled split for self-supervised
    methods, the labelled train split for supervised ones. Made to the network's input ``shape`` (channels, height,
    width): grayscale or RGB (the same images tinted, ``synthetic_images``), and a ``crop`` window (the preset's,
    two thirds of the image's side) resized to the height and width where they differ from it."""

    def __init__(self, crop: int, train_split: str, shape: tuple[int, ...] | None = None) -> None:
        shape = shape or (1, crop, crop)
        if shape[0] not in (1, 3):
            raise ConfigError(f"the embedded images are grayscale or RGB; the network reads {shape[0]} channels")
        self.images = _images(train_split, shape[0] == 3)
        self.crop, self.train_split, self.size = crop, train_split, tuple(shape[1:])
        self.num_classes = self.images.num_classes
        self.skips = Skips()

    def batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        x, labels = self.images.random_crops(batch_size, generator, crop=self.crop)
        return Batch(self.resized(x), labels)

    def resized(self, x: torch.Tensor) -> torch.Tensor:
        """Crops (N, C, crop, crop) at the network's height and width (bilinear, antialiased where it shrinks)."""
        if x.shape[-2:] == self.size:
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)

    def probe_tasks(self) -> list[ProbeTask]:
        colour = self.images.images.dim() == 4
        (train_x, train_y), (test_x, test_y) = (_images(s, colour).center_crops(self.crop) for s in ("train", "test"))
        return [ProbeTask("class", "pooled", list(self.resized(train_x)), list(train_y), list(self.resized(test_x)),
                          list(test_y), self.num_classes)]

    def describe(self) -> dict:
        return {"train_split": self.train_split, "train_examples": len(self.images.images)}


def vision_train_split(cfg, labelled: bool) -> str:
    """The image split training draws from: ``--train-split``, or by default unlabeled (train if ``labelled``);
    ``config.resolve`` has refused the unlabeled split for a method that trains on labels."""
    if cfg.train_split == "auto":
        return "train" if labelled else "unlabeled"
    return cfg.train_split


@dataclass(frozen=True)
class Dataset:
    """A registered ``--data``: how to build its source for a resolved config, and what ``config.resolve`` checks."""

    build: Callable[..., Source]  # (cfg, labelled) -> Source
    modality: str | None  # the modality it holds; None: both (generated to order)
    needs_root: bool  # read from --data-root
    unlabeled: bool = True  # a vision dataset with an unlabeled split (--train-split unlabeled)

    @property
    def description(self) -> str:
        return (self.build.__doc__ or "").strip().splitlines()[0]


def _synthetic(cfg, labelled: bool = False) -> Source:
    """The embedded default: generated in process from a fixed seed, no files."""
    spec, shape = PRESETS[cfg.preset][cfg.modality], network_entry(cfg.network).input_of(cfg.preset)
    if cfg.modality == "audio":
        return SyntheticAudio(shape[-1])
    return SyntheticVision(spec.crop, vision_train_split(cfg, labelled), shape)


def _stl10(cfg, labelled: bool = False) -> Source:
    """STL-10 binary release from --data-root: grayscale or RGB, unlabeled split for training, train/test probes."""
    from gimbench.data.stl10 import Stl10
    from gimbench.data.views import image_input

    channels, crop = image_input(cfg, "stl10", IMAGE_SIZE)
    return Stl10(Path(cfg.data_root), crop, vision_train_split(cfg, labelled), channels)


def _cifar10(cfg, labelled: bool = False) -> Source:
    """CIFAR-10 python release from --data-root: RGB 32x32, train split for training, train/test probes."""
    from gimbench.data.cifar10 import SIDE, Cifar10
    from gimbench.data.views import image_input

    channels, crop = image_input(cfg, "cifar10", SIDE)
    return Cifar10(Path(cfg.data_root), crop, channels)


def _librispeech(cfg, labelled: bool = False) -> Source:
    """LibriSpeech train-clean-100 with the CPC splits and phone labels from --data-root."""
    from gimbench.data.librispeech import LibriSpeech

    return LibriSpeech(Path(cfg.data_root), PRESETS[cfg.preset]["audio"].crop_samples)


DATASETS.register("synthetic")(Dataset(_synthetic, modality=None, needs_root=False))
DATASETS.register("stl10")(Dataset(_stl10, modality="vision", needs_root=True))
DATASETS.register("librispeech")(Dataset(_librispeech, modality="audio", needs_root=True))
DATASETS.register("cifar10")(Dataset(_cifar10, modality="vision", needs_root=True, unlabeled=False))


def make_source(cfg, *, labelled: bool = False) -> Source:
    """The training source for a resolved config; ``labelled`` when the method trains on labels."""
    return DATASETS[cfg.data].build(cfg, labelled)
