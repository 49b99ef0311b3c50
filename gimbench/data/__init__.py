"""Datasets, registered by ``--data`` name. Each yields training batches and probe tasks.

A source is built for a resolved config. ``batch`` hands out training inputs as float32 tensors —
audio (B, 1, samples), vision (B, 1, crop, crop) — with their labels (speaker, class; -1 where the
split is unlabelled), drawn with the caller's generator so a run is reproducible from its seed.
``probe_tasks`` gives the frozen-feature evaluation data.
"""

from __future__ import annotations

import functools
from typing import Protocol

import torch

from gimbench.config import RunConfig
from gimbench.models.presets import PRESETS
from gimbench.probe import ProbeTask
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

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch: inputs and labels."""
        ...

    def probe_tasks(self) -> list[ProbeTask]:
        """The probe tasks of this dataset, train and test splits."""
        ...


@functools.cache
def _audio(split: str):
    from gimbench.data.synthetic import make_audio_corpus

    return make_audio_corpus(seed=CORPUS_SEED, split=split, utterances_per_speaker=UTTERANCES[split])


@functools.cache
def _images(split: str):
    from gimbench.data.synthetic import make_image_set

    return make_image_set(seed=CORPUS_SEED, split=split)


class SyntheticAudio:
    """Random crops of the embedded speech-like corpus (see ``gimbench.data.synthetic``)."""

    def __init__(self, crop_samples: int) -> None:
        self.corpus = _audio("train")
        self.crop_samples = crop_samples
        self.num_classes = self.corpus.num_speakers

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.corpus.random_crops(batch_size, self.crop_samples, generator)

    def probe_tasks(self) -> list[ProbeTask]:
        train, test = _audio("train"), _audio("test")
        waves = [[w.unsqueeze(0) for w in c.waves] for c in (train, test)]
        speaker = ProbeTask("speaker", "pooled", waves[0], list(train.speakers), waves[1], list(test.speakers),
                            train.num_speakers)
        subset = [i for i in range(len(train.waves)) if i % UTTERANCES["train"] < PHONE_PROBE_UTTERANCES]
        phone = ProbeTask("phone", "frames", [waves[0][i] for i in subset], [train.phones[i] for i in subset],
                          waves[1], test.phones, train.num_phones)
        return [speaker, phone]


class SyntheticVision:
    """Random crops with flips of the embedded images: the unlabeled split for self-supervised
    methods, the labelled train split for supervised ones."""

    def __init__(self, crop: int, labelled: bool) -> None:
        self.images = _images("train" if labelled else "unlabeled")
        self.crop = crop
        self.num_classes = self.images.num_classes

    def batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images.random_crops(batch_size, generator, crop=self.crop)

    def probe_tasks(self) -> list[ProbeTask]:
        (train_x, train_y), (test_x, test_y) = (_images(s).center_crops(self.crop) for s in ("train", "test"))
        return [ProbeTask("class", "pooled", list(train_x), list(train_y), list(test_x), list(test_y),
                          self.num_classes)]


@DATASETS.register("synthetic")
def synthetic(cfg: RunConfig, labelled: bool = False) -> Source:
    """The embedded default: generated in process from a fixed seed, no files."""
    spec = PRESETS[cfg.preset][cfg.modality]
    if cfg.modality == "audio":
        return SyntheticAudio(spec.crop_samples)
    return SyntheticVision(spec.crop, labelled)


def make_source(cfg: RunConfig, *, labelled: bool = False) -> Source:
    """The training source for a resolved config; ``labelled`` when the method trains on labels."""
    return DATASETS[cfg.data](cfg, labelled)
