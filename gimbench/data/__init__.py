"""Datasets, registered by ``--data`` name. Each yields training batches of one modality.

A source is built for a resolved config and hands out training inputs as float32 tensors:
audio (B, 1, samples), vision (B, 1, crop, crop), drawn with the caller's generator so a run is
reproducible from its seed.
"""

from __future__ import annotations

from typing import Protocol

import torch

from gimbench.config import RunConfig
from gimbench.models.presets import PRESETS
from gimbench.registry import Registry

DATASETS = Registry("dataset")
CORPUS_SEED = 0  # the embedded corpus is one fixed dataset; --seed varies the run, not the data


class Source(Protocol):
    """What the trainer needs of a dataset."""

    def batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """A training batch of inputs."""
        ...


class SyntheticAudio:
    """Random crops of the embedded speech-like corpus (see ``gimbench.data.synthetic``)."""

    def __init__(self, crop_samples: int) -> None:
        from gimbench.data.synthetic import make_audio_corpus

        self.corpus = make_audio_corpus(seed=CORPUS_SEED, split="train")
        self.crop_samples = crop_samples

    def batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        return self.corpus.random_crops(batch_size, self.crop_samples, generator)[0]


class SyntheticVision:
    """Random crops with flips of the embedded unlabeled image split."""

    def __init__(self, crop: int) -> None:
        from gimbench.data.synthetic import make_image_set

        self.images = make_image_set(seed=CORPUS_SEED, split="unlabeled")
        self.crop = crop

    def batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        return self.images.random_crops(batch_size, generator, crop=self.crop)[0]


@DATASETS.register("synthetic")
def synthetic(cfg: RunConfig) -> Source:
    """The embedded default: generated in process from a fixed seed, no files."""
    spec = PRESETS[cfg.preset][cfg.modality]
    if cfg.modality == "audio":
        return SyntheticAudio(spec.crop_samples)
    return SyntheticVision(spec.crop)


def make_source(cfg: RunConfig) -> Source:
    """The training source for a resolved config."""
    return DATASETS[cfg.data](cfg)
