"""LibriSpeech train-clean-100 as a gimbench source: training crops, speaker and phone probes, read with soundfile.

Training draws utterances of ``train_split.txt`` uniformly and crops of the preset's length (20480 samples
at the paper preset) starting at a multiple of 160 samples; the label is the speaker, from the directory
layout. Probes train on the train split and test on the test split, over a fixed-seed subset (features of
every module of all 100 hours would not fit in memory): the speaker probe reads a centred crop of up to
``PROBE_SPEAKER`` utterances per speaker, the phone probe whole utterances, up to ``PROBE_PHONE`` of them.
An utterance that fails to decode is left out and counted, here or in a loader worker.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from gimbench.data.corpus import FRAME_SAMPLES, Batch, frame_aligned_crops
from gimbench.data.librispeech_index import LAYOUT, NUM_PHONES, Utterance, load_index, phone_alignment
from gimbench.data.problems import DataError, Skips
from gimbench.data.tasks import ProbeTask

PROBE_SPEAKER = {"train": 10, "test": 4}  # utterances per speaker
PROBE_PHONE = {"train": 200, "test": 100}  # utterances
PROBE_SEED = 0  # the probe subset is part of the benchmark, not of the run: --seed does not change it


def read_audio(path: Path, start: int, frames: int, skips: Skips) -> torch.Tensor | None:
    """Float32 ``(frames,)`` samples from ``start`` (first channel), or ``None`` counted as unreadable."""
    try:
        wave, _ = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError):
        wave = None
    if wave is None or len(wave) != frames:
        skips.add("unreadable_audio", str(path))
        return None
    return torch.from_numpy(np.ascontiguousarray(wave[:, 0]))


class LibriSpeech:
    """Random crops of the train split's utterances, with their speakers.

    Args:
        root: The folder holding ``LibriSpeech/`` and ``LibriSpeech100_labels_split/``.
        crop_samples: Training crop length, a multiple of 160.
    """

    def __init__(self, root: Path, crop_samples: int) -> None:
        self.index = load_index(Path(root))
        self.skips = copy.deepcopy(self.index.skips)
        self.crop = crop_samples
        self.pool = [u for u in self.index.splits["train"] if self._long_enough(u)]
        if not self.pool:
            raise DataError(f"no utterance of the train split is as long as one {crop_samples}-sample crop", LAYOUT,
                            "librispeech")
        self.lengths = torch.tensor([u.samples for u in self.pool])
        self.speakers = torch.tensor([self.index.speaker_label(u) for u in self.pool])
        self.dead: set[int] = set()  # pool entries that failed to decode in this process
        self.num_classes = len(self.index.speakers)

    def _long_enough(self, utterance: Utterance) -> bool:
        if utterance.samples >= self.crop:
            return True
        self.skips.add("too_short", str(utterance.path))
        return False

    def batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Float32 ``(B, 1, crop)`` crops and int64 ``(B,)`` speakers; crops that fail to decode are redrawn."""
        waves, labels = [], []
        while len(waves) < batch_size:
            utt, starts = frame_aligned_crops(self.lengths, batch_size - len(waves), self.crop, generator)
            for u, start in zip(utt.tolist(), starts.tolist(), strict=True):
                wave = self._read(u, start)
                if wave is not None:
                    waves.append(wave)
                    labels.append(self.speakers[u])
        return Batch(torch.stack(waves).unsqueeze(1), torch.stack(labels))

    def _read(self, u: int, start: int) -> torch.Tensor | None:
        if u in self.dead:
            return None
        wave = read_audio(self.pool[u].path, start, self.crop, self.skips)
        if wave is None:
            self.dead.add(u)
            if len(self.dead) == len(self.pool):
                raise DataError(f"none of the {len(self.pool)} training utterances could be decoded "
                                f"(first: {self.pool[0].path})")
        return wave

    def probe_tasks(self) -> list[ProbeTask]:
        rng = np.random.default_rng(PROBE_SEED)
        speaker = [self._speaker_rows(split, rng) for split in ("train", "test")]
        phone = [self._phone_rows(split, rng) for split in ("train", "test")]
        return [ProbeTask("speaker", "pooled", *speaker[0], *speaker[1], self.num_classes),
                ProbeTask("phone", "frames", *phone[0], *phone[1], NUM_PHONES)]

    def _speaker_rows(self, split: str, rng: np.random.Generator) -> tuple[list, list]:
        """Centred frame-aligned crops of up to ``PROBE_SPEAKER[split]`` utterances per speaker."""
        by_speaker: dict[str, list[Utterance]] = {}
        for u in self.index.splits[split]:
            by_speaker.setdefault(u.speaker, []).append(u)
        inputs, labels = [], []
        for speaker in sorted(by_speaker):
            for i in rng.permutation(len(by_speaker[speaker]))[: PROBE_SPEAKER[split]]:
                u = by_speaker[speaker][i]
                frames = min(self.crop, u.samples) // FRAME_SAMPLES * FRAME_SAMPLES
                start = (u.samples - frames) // 2 // FRAME_SAMPLES * FRAME_SAMPLES
                if not frames:
                    self.skips.add("too_short", str(u.path))
                    continue
                wave = read_audio(u.path, start, frames, self.skips)
                if wave is not None:
                    inputs.append(wave.unsqueeze(0))
                    labels.append(torch.tensor(self.index.speaker_label(u)))
        return inputs, labels

    def _phone_rows(self, split: str, rng: np.random.Generator) -> tuple[list, list]:
        """Whole utterances with a label per 10 ms frame, up to ``PROBE_PHONE[split]`` of them."""
        inputs, labels = [], []
        utterances = self.index.splits[split]
        for i in rng.permutation(len(utterances)):
            if len(inputs) == PROBE_PHONE[split]:
                break
            u = utterances[i]
            phones = self.index.phones(u, self.skips)
            if phones is None:
                continue
            start, frames = phone_alignment(u.samples, len(phones))
            wave = read_audio(u.path, start, frames * FRAME_SAMPLES, self.skips)
            if wave is not None:
                inputs.append(wave.unsqueeze(0))
                labels.append(torch.from_numpy(phones[:frames]))
        if not inputs:
            raise DataError(f"no utterance of the {split} split has usable phone labels (skipped: "
                            f"{dict(self.skips.counts)})", LAYOUT, "librispeech")
        return inputs, labels

    def describe(self) -> dict:
        return {"root": str(self.index.root), "train_split": "train_split.txt", "train_examples": len(self.pool),
                "speakers": self.num_classes}
