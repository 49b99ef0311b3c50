"""``gimbench data check``: validate a real dataset folder and summarise what a run would use.

It runs the same readers as a training run (so it accepts and rejects exactly what a run does), and in
addition parses every phone line of LibriSpeech. A dataset that cannot be used raises ``DataError``.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Group
from rich.table import Table

from gimbench.data.cifar10 import META as CIFAR_META
from gimbench.data.cifar10 import RELEASE_BATCH, read_release, train_statistics
from gimbench.data.cifar10 import SPLITS as CIFAR_SPLITS
from gimbench.data.corpus import SAMPLE_RATE
from gimbench.data.librispeech_index import PHONES_FILE, SPLIT_FILES, labels_folder, load_index
from gimbench.data.problems import REASONS, Skips
from gimbench.data.stl10 import (
    CLASS_NAMES,
    FILES,
    NUM_CLASSES,
    OFFICIAL_COUNTS,
    Stl10Split,
    binary_folder,
    check_files,
    class_names,
)
from gimbench.data.views import RGB


@dataclass
class DataReport:
    """What ``data check`` found: (what, found) rows and everything left out."""

    dataset: str
    root: Path
    rows: list[tuple[str, str]] = field(default_factory=list)
    skips: Skips = field(default_factory=Skips)

    def __rich__(self) -> Group:
        found = Table(title=f"{self.dataset} at {self.root}", title_justify="left")
        found.add_column("what")
        found.add_column("found")
        for what, value in self.rows:
            found.add_row(what, value)
        if not self.skips:
            return Group(found, "nothing left out: every file named by the dataset is usable")
        left = Table(title=f"left out (counted in results.json's data.skipped by runs that meet them); "
                           f"paths under {self.root}", title_justify="left")
        for column in ("reason", "count", "meaning"):
            left.add_column(column)
        left.add_column("first paths", overflow="fold")
        for reason, entry in self.skips.to_json().items():
            paths = (p.removeprefix(f"{self.root}/") for p in entry["examples"])
            left.add_row(reason, str(entry["count"]), REASONS[reason], "\n".join(paths))
        return Group(found, left)


def check_stl10(root: Path) -> DataReport:
    """Files, images per split, labels per class; ``DataError`` if train/test are missing or malformed."""
    folder = binary_folder(root)
    check_files(folder, ["train", "test"])
    report = DataReport("stl10", Path(root))
    named = class_names(folder)
    classes = named or [str(c) for c in range(1, NUM_CLASSES + 1)]
    report.rows.append((CLASS_NAMES, ", ".join(classes) if named else "missing (optional)"))
    for split in ("train", "test", "unlabeled"):
        if split == "unlabeled" and not (folder / FILES[split][0]).is_file():
            report.rows.append((split, f"missing {folder / FILES[split][0]}: only --train-split train is possible"))
            continue
        data = Stl10Split(folder, split)
        official = "" if len(data) == OFFICIAL_COUNTS[split] else f" (the release has {OFFICIAL_COUNTS[split]})"
        report.rows.append((split, f"{len(data)} images{official}, {data.path.stat().st_size} bytes"))
        if split != "unlabeled":
            report.rows.append((f"{split} labels", class_counts(data.labels, classes)))
    return report


def class_counts(labels: torch.Tensor, classes: list[str]) -> str:
    """``name count`` for every class present in ``labels`` (0-based indices into ``classes``)."""
    per_class = Counter(labels.tolist())
    return ", ".join(f"{classes[c]} {per_class[c]}" for c in sorted(per_class))


def check_cifar10(root: Path) -> DataReport:
    """Files, images per split and per file, labels per class and the MD5 check; ``DataError`` if a file is missing
    or malformed, or a file of the full release is not the release's."""
    release = read_release(root)
    report = DataReport("cifar10", Path(root))
    report.rows.append((CIFAR_META, ", ".join(release.names)))
    for split, files in CIFAR_SPLITS.items():
        count, official = len(release.labels[split]), len(files) * RELEASE_BATCH
        note = "" if count == official else f" (the release has {official})"
        per_file = ", ".join(f"{name} {release.per_file[name]}" for name in files)
        report.rows.append((split, f"{count} images{note}: {per_file}"))
        report.rows.append((f"{split} labels", class_counts(release.labels[split], release.names)))
    mean, std = train_statistics(release, RGB)
    report.rows.append(("RGB mean, std (train)", f"{_triple(mean)}; {_triple(std)} (RGB inputs normalised with them)"))
    report.rows.append(("MD5", "every file is the release's (torchvision's list)" if release.md5_checked else
                        f"not checked: not the full release (a batch file holds other than {RELEASE_BATCH} images)"))
    return report


def check_librispeech(root: Path) -> DataReport:
    """Files, usable utterances, speakers, hours and phone labels per split, and everything left out."""
    index = load_index.__wrapped__(Path(root))  # not the cached index: the folder may have changed
    report = DataReport("librispeech", Path(root), skips=copy.deepcopy(index.skips))
    unused = index.flac_files - sum(len(u) for u in index.splits.values())
    chapters, with_text = index.chapters
    report.rows += [
        ("FLAC files", f"{index.flac_files} under LibriSpeech/train-clean-100 ({unused} not used by either split)"),
        ("chapters", f"{chapters}, {with_text} with their .trans.txt"),
        ("speakers", f"{len(index.speakers)} (train-clean-100 has 251)"),
        (PHONES_FILE, f"{len(index.phone_lines)} utterances"),
    ]
    for split, utterances in index.splits.items():
        labelled = sum(index.phones(u, report.skips) is not None for u in utterances)
        seconds = sum(u.samples for u in utterances) / SAMPLE_RATE
        speakers = len({u.speaker for u in utterances})
        report.rows.append((f"{split} ({SPLIT_FILES[split]})",
                            f"{len(utterances)} usable utterances, {speakers} speakers, {_duration(seconds)}; "
                            f"{labelled} with phone labels, {len(utterances) - labelled} without"))
    report.rows.append(("labels folder", str(labels_folder(root))))
    return report


def _triple(values: torch.Tensor) -> str:
    return ", ".join(f"{v:.4f}" for v in values.tolist())


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds:.1f} s"


CHECKS = {"stl10": check_stl10, "cifar10": check_cifar10, "librispeech": check_librispeech}


def check_dataset(name: str, root: Path) -> DataReport:
    """The report for dataset ``name`` at ``root``; ``DataError`` if it cannot be used."""
    return CHECKS[name](Path(root))
