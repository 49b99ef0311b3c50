"""Containers, constants and seeding helpers shared by the embedded synthetic generators."""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

SAMPLE_RATE = 16000
FRAME_SAMPLES = 160  # one label frame = 10 ms
IMAGE_SIZE = 96
IMAGE_MEAN = 0.4120  # STL-10 grayscale statistics, shared by real and synthetic images
IMAGE_STD = 0.2570


# --------------------------------------------------------------------------------------------- containers



class Batch(NamedTuple):
    """One training batch: float32 inputs, audio (B, 1, samples) or vision (B, channels, crop, crop), and their int64
    labels (B,) (speaker, class; -1 where the split is unlabelled)."""

    inputs: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class AudioCorpus:
    """Utterances with a speaker per utterance and a phone per 10 ms frame.

    Attributes:
        waves: Float32 waveforms ``(T,)`` at 16 kHz, ``T`` a multiple of 160, within [-1, 1].
        speakers: Int64 ``(N,)`` speaker index per utterance, in ``[0, num_speakers)``.
        phones: Int64 ``(T // 160,)`` phone label per frame, in ``[0, num_phones)``; 0 is silence.
        num_speakers: Number of speakers.
        num_phones: Size of the phone inventory.
    """

    waves: list[torch.Tensor]
    speakers: torch.Tensor
    phones: list[torch.Tensor]
    num_speakers: int
    num_phones: int

    def random_crops(
        self, batch_size: int, crop_samples: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws a batch of frame-aligned crops.

        Args:
            batch_size: Number of crops ``B``.
            crop_samples: Crop length, a multiple of 160 no longer than the shortest utterance.
            generator: Source of randomness; the result depends only on its state.

        Returns:
            ``x`` float32 ``(B, 1, crop_samples)`` and the speaker of each crop, int64 ``(B,)``.

        Raises:
            ValueError: If ``batch_size`` is not positive or ``crop_samples`` does not fit.
        """
        lengths = torch.tensor([len(w) for w in self.waves])
        utt, starts = frame_aligned_crops(lengths, batch_size, crop_samples, generator)
        x = torch.stack(
            [self.waves[u][s : s + crop_samples] for u, s in zip(utt.tolist(), starts.tolist(), strict=True)]
        )
        return x.unsqueeze(1), self.speakers[utt]


@dataclass(frozen=True)
class ImageSet:
    """Grayscale or RGB images with class labels.

    Attributes:
        images: Uint8 ``(N, 96, 96)``, or ``(N, 96, 96, 3)`` for RGB (channels last: crops index rows and columns
            alike); batches come out channels first.
        labels: Int64 ``(N,)`` class index, or -1 for unlabeled images.
        num_classes: Number of classes.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def random_crops(
        self, batch_size: int, generator: torch.Generator, crop: int = 64
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training view: random images, random ``crop`` x ``crop`` windows and random horizontal flips.

        Args:
            batch_size: Number of crops ``B``.
            generator: Source of randomness; the result depends only on its state.
            crop: Side of the square crop, at most 96.

        Returns:
            Normalised float32 ``(B, 1 or 3, crop, crop)`` and the labels ``(B,)``.

        Raises:
            ValueError: If ``batch_size`` is not positive or ``crop`` does not fit.
        """
        idx, top, left, flip = random_views(len(self.images), self._check_crop(crop), batch_size, crop, generator)
        patches = cut_views(self.images[idx], top, left, flip, crop)
        return normalise(patches), self.labels[idx]

    def center_crops(self, crop: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation view: the centre ``crop`` x ``crop`` window of every image, normalised.

        Args:
            crop: Side of the square crop, at most 96.

        Returns:
            Normalised float32 ``(N, 1 or 3, crop, crop)`` and the labels ``(N,)``.

        Raises:
            ValueError: If ``crop`` does not fit.
        """
        size = self._check_crop(crop)
        start = (size - crop) // 2
        return normalise(self.images[:, start : start + crop, start : start + crop]), self.labels

    def _check_crop(self, crop: int) -> int:
        size = int(self.images.shape[1])
        if not 0 < crop <= size:
            raise ValueError(f"crop={crop} must be in [1, {size}]")
        return size


def normalise(images: torch.Tensor) -> torch.Tensor:
    """Uint8 (N, H, W) or (N, H, W, 3) to normalised float32 (N, 1 or 3, H, W), every channel by the same
    statistics."""
    scaled = (images.float() / 255.0 - IMAGE_MEAN) / IMAGE_STD
    return scaled.unsqueeze(1) if images.dim() == 3 else scaled.permute(0, 3, 1, 2).contiguous()


def frame_aligned_crops(
    lengths: torch.Tensor, batch_size: int, crop_samples: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws ``batch_size`` (utterance, start) pairs: utterances uniformly, starts uniformly on the 160-sample grid.

    Args:
        lengths: Int64 ``(N,)`` utterance lengths in samples.
        batch_size: Number of crops.
        crop_samples: Crop length, a multiple of 160 no longer than the shortest utterance.
        generator: Source of randomness; the result depends only on its state.

    Returns:
        Utterance indices and start samples, int64 ``(batch_size,)`` each.

    Raises:
        ValueError: If ``batch_size`` is not positive or ``crop_samples`` does not fit.
    """
    check_positive(batch_size=batch_size, crop_samples=crop_samples)
    if crop_samples % FRAME_SAMPLES or crop_samples > int(lengths.min()):
        raise ValueError(
            f"crop_samples={crop_samples} must be a multiple of {FRAME_SAMPLES} "
            f"and at most the shortest utterance ({int(lengths.min())} samples)"
        )
    utt = torch.randint(len(lengths), (batch_size,), generator=generator)
    # Starts must stay on the label grid so frame labels of a crop can be recovered by slicing.
    n_starts = (lengths[utt] - crop_samples) // FRAME_SAMPLES + 1
    starts = (torch.rand(batch_size, generator=generator, dtype=torch.float64) * n_starts).long()
    return utt, torch.minimum(starts, n_starts - 1) * FRAME_SAMPLES


def random_views(
    count: int, size: int, batch_size: int, crop: int, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """Draws the training views of ``batch_size`` images out of ``count``: (index, top, left, flip), each (B,)."""
    check_positive(batch_size=batch_size)
    idx = torch.randint(count, (batch_size,), generator=generator)
    top = torch.randint(size - crop + 1, (batch_size,), generator=generator)
    left = torch.randint(size - crop + 1, (batch_size,), generator=generator)
    flip = torch.rand(batch_size, generator=generator) < 0.5
    return idx, top, left, flip


def cut_views(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, crop: int
) -> torch.Tensor:
    """``crop`` x ``crop`` windows of ``images`` (B, H, W) at (top, left), mirrored where ``flip``: (B, crop, crop)."""
    steps = torch.arange(crop)
    rows = top[:, None] + steps
    cols = torch.where(flip[:, None], left[:, None] + crop - 1 - steps, left[:, None] + steps)
    return images[torch.arange(len(images))[:, None, None], rows[:, :, None], cols[:, None, :]]


def check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def check_seed(seed: int) -> None:
    # SeedSequence needs non-negative integers; a bool or float seed is almost certainly a mistake.
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def split_code(split: str, table: dict[str, int]) -> int:
    if split not in table:
        raise ValueError(f"split must be one of {sorted(table)}, got {split!r}")
    return table[split]


def seeded_rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in keys])
