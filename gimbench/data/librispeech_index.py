"""The LibriSpeech train-clean-100 folder with the CPC split and phone files, indexed without decoding audio.

Layout (the reference's, accepted as it is)::

    ROOT/LibriSpeech/train-clean-100/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac   (+ SPEAKER-CHAPTER.trans.txt)
    ROOT/LibriSpeech100_labels_split/train_split.txt, test_split.txt, converted_aligned_phones.txt

Metadata comes from the directory layout (speaker and chapter from the path) and from FLAC headers read
with soundfile (sample rate, length); no audio is decoded here. Per-utterance problems are counted in
``Skips`` (see ``gimbench.data.problems``); a missing folder or file raises ``DataError``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from gimbench.data.corpus import FRAME_SAMPLES, SAMPLE_RATE
from gimbench.data.problems import DataError, Skips

AUDIO = Path("LibriSpeech") / "train-clean-100"
LABELS = Path("LibriSpeech100_labels_split")
SPLIT_FILES = {"train": "train_split.txt", "test": "test_split.txt"}
PHONES_FILE = "converted_aligned_phones.txt"
NUM_PHONES = 41
KALDI_WINDOW = 400  # samples of the 25 ms analysis window the forced alignment used (Kaldi, snip-edges)
KALDI_CENTRE = KALDI_WINDOW // 2  # label frame f is centred on sample 160 f + 200
LAYOUT = (
    "expected layout (the reference's): PATH/LibriSpeech/train-clean-100/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac "
    "with SPEAKER-CHAPTER.trans.txt per chapter, and PATH/LibriSpeech100_labels_split/ holding train_split.txt, "
    "test_split.txt and converted_aligned_phones.txt; get train-clean-100.tar.gz from https://www.openslr.org/12 "
    "and extract it into PATH, and the CPC split files and converted_aligned_phones.zip from the links in the CPC "
    "(facebookresearch/CPC_audio) or Greedy InfoMax READMEs, unzipped into PATH/LibriSpeech100_labels_split/ "
    "(gimbench never downloads)"
)


@dataclass(frozen=True)
class Utterance:
    """One usable utterance: id ``SPEAKER-CHAPTER-UTT``, its speaker, file and length in samples."""

    id: str
    speaker: str
    path: Path
    samples: int


@dataclass
class LibriSpeechIndex:
    """What is on disk: usable utterances per split, speakers, phone lines (unparsed), and what was left out.

    Attributes:
        root: The data root.
        splits: "train"/"test" -> usable utterances in split-file order.
        speakers: Sorted speaker ids of every usable utterance; a speaker's label is its position here.
        phone_lines: Utterance id -> the labels part of its line in converted_aligned_phones.txt.
        flac_files: FLAC files found under train-clean-100 (in a split or not).
        chapters: Chapter folders found, and how many of them hold their .trans.txt file.
        skips: Utterances left out while indexing, by reason.
    """

    root: Path
    splits: dict[str, list[Utterance]]
    speakers: list[str]
    phone_lines: dict[str, str]
    flac_files: int
    chapters: tuple[int, int]
    skips: Skips = field(default_factory=Skips)

    def speaker_label(self, utterance: Utterance) -> int:
        return self._labels[utterance.speaker]

    def __post_init__(self) -> None:
        self._labels = {s: i for i, s in enumerate(self.speakers)}

    def phones(self, utterance: Utterance, skips: Skips) -> np.ndarray | None:
        """Int64 label per 10 ms frame, or ``None`` (counted in ``skips``) if absent, malformed or mismatched.

        A label count is accepted when it is within one frame of the range from Kaldi's snip-edges frame
        count ``(T - 400) // 160 + 1`` (what the forced alignment produced) to ``T // 160``.
        """
        line = self.phone_lines.get(utterance.id)
        if line is None:
            skips.add("no_phone_labels", str(utterance.path))
            return None
        try:
            labels = np.array(line.split(), dtype=np.int64)
        except ValueError:
            labels = np.array([-1])
        if len(labels) == 0 or labels.min() < 0 or labels.max() >= NUM_PHONES:
            skips.add("bad_phone_line", utterance.id)
            return None
        kaldi = (utterance.samples - KALDI_WINDOW) // FRAME_SAMPLES + 1
        if not kaldi - 1 <= len(labels) <= utterance.samples // FRAME_SAMPLES + 1:
            skips.add("phone_length_mismatch", f"{utterance.path} ({len(labels)} labels, {utterance.samples} samples)")
            return None
        return labels


def phone_alignment(samples: int, labels: int) -> tuple[int, int]:
    """(first sample, frames) of the audio a phone probe reads for an utterance of ``samples`` with ``labels``.

    Label f comes from the analysis window [160 f, 160 f + 400), centred on 160 f + 200. Reading from sample
    120 puts our frame f, samples [120 + 160 f, 280 + 160 f), on that same centre; when the labels leave less
    room the start moves towards 0, and labels beyond the audio are dropped.
    """
    start = max(0, min(KALDI_CENTRE - FRAME_SAMPLES // 2, samples - FRAME_SAMPLES * labels))
    return start, min(labels, (samples - start) // FRAME_SAMPLES)


def labels_folder(root: Path) -> Path:
    return Path(root) / LABELS


def check_layout(root: Path) -> None:
    """``DataError`` naming everything missing from the expected layout at once."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data-root {root} is not a folder", LAYOUT, "librispeech")
    hint = " (--data-root must be the folder that holds LibriSpeech/, not LibriSpeech/ itself)" \
        if (root / "train-clean-100").is_dir() else ""
    wanted = [root / AUDIO] + [labels_folder(root) / name for name in (*SPLIT_FILES.values(), PHONES_FILE)]
    missing = [str(p) for p in wanted if not p.exists()]
    if missing:
        raise DataError(f"LibriSpeech not found at --data-root {root}: missing {', '.join(missing)}{hint}", LAYOUT,
                        "librispeech")


def find_flac(audio: Path) -> dict[str, Path]:
    """Utterance id -> FLAC path for every ``SPEAKER/CHAPTER/SPEAKER-CHAPTER-*.flac`` under ``audio``."""
    return {p.stem: p for p in sorted(audio.glob("*/*/*.flac")) if p.stem.startswith(f"{p.parent.parent.name}-"
                                                                                     f"{p.parent.name}-")}


def read_text(path: Path) -> str:
    """A split or phone file's text, or ``DataError`` if it cannot be read as text."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path} cannot be read as text ({type(e).__name__}: {e})", LAYOUT, "librispeech") from None


def read_ids(path: Path) -> list[str]:
    """The utterance ids of a split file, one per line (blank lines ignored)."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def read_phone_lines(path: Path, skips: Skips) -> dict[str, str]:
    """Utterance id -> the rest of its line, unparsed (parsing all ~3.6e7 labels up front is slow)."""
    lines = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        head, _, rest = line.strip().partition(" ")
        if head and rest:
            lines[head] = rest
        elif head:
            skips.add("bad_phone_line", f"{path}:{number}: {line[:40]}")
    return lines


def usable(uid: str, flac: dict[str, Path], skips: Skips) -> Utterance | None:
    """The utterance if its FLAC exists, opens and is at 16 kHz; otherwise ``None``, counted in ``skips``."""
    path = flac.get(uid)
    if path is None:
        skips.add("missing_audio", uid)
        return None
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        skips.add("unreadable_audio", str(path))
        return None
    if info.samplerate != SAMPLE_RATE:
        skips.add("wrong_sample_rate", f"{path} ({info.samplerate} Hz)")
        return None
    return Utterance(uid, uid.split("-")[0], path, info.frames)


@functools.cache
def load_index(root: Path) -> LibriSpeechIndex:
    """Indexes ``root`` (cached per process: ``gimbench table`` indexes once for all its runs).

    Raises:
        DataError: If the layout is incomplete or a split has no usable utterance.
    """
    check_layout(root)
    skips = Skips()
    audio = Path(root) / AUDIO
    flac = find_flac(audio)
    splits = {}
    for split, name in SPLIT_FILES.items():
        found = [usable(uid, flac, skips) for uid in read_ids(labels_folder(root) / name)]
        splits[split] = [u for u in found if u is not None]
        if not splits[split]:
            raise DataError(f"{labels_folder(root) / name}: no usable utterance (of {len(found)} named; "
                            f"skipped: {dict(skips.counts)})", LAYOUT, "librispeech")
    chapters = [c for c in audio.glob("*/*") if c.is_dir()]
    with_text = sum((c / f"{c.parent.name}-{c.name}.trans.txt").is_file() for c in chapters)
    speakers = sorted({u.speaker for us in splits.values() for u in us})
    phone_lines = read_phone_lines(labels_folder(root) / PHONES_FILE, skips)
    skips.drain()  # index-time skips are copied into each source, not handed on by loader workers
    return LibriSpeechIndex(Path(root), splits, speakers, phone_lines, len(flac), (len(chapters), with_text), skips)
