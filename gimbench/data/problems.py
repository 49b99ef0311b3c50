"""What can be wrong with a dataset on disk: errors that stop a run, and skips that are counted.

Policy (also in the README): a problem with the dataset as a whole (a missing folder or file, a truncated
or inconsistent STL-10 binary, nothing usable left) raises ``DataError``, whose message says what was
expected where. A problem with one utterance (unreadable or corrupt audio, a wrong sample rate, a split
naming audio that is not there, missing or mismatched phone labels) leaves that utterance out and counts
it under a reason in ``Skips``; the counts and the first few paths are shown by ``gimbench data check``
and written to results.json. Nothing is dropped without being counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gimbench.errors import ConfigError

EXAMPLES = 5  # paths kept per reason

# Why an utterance was left out; the keys of results.json's data.skipped.
REASONS = {
    "unreadable_audio": "audio that soundfile cannot open or decode (corrupt or truncated FLAC)",
    "wrong_sample_rate": "audio not at 16 kHz",
    "missing_audio": "named in a split file but no FLAC file on disk",
    "too_short": "shorter than one training crop (still used by the probes)",
    "no_phone_labels": "not in converted_aligned_phones.txt (left out of the phone probe only)",
    "phone_length_mismatch": "phone label count does not match the audio length (phone probe only)",
    "bad_phone_line": "a line of converted_aligned_phones.txt that is not 'ID int int ...' with labels 0-40",
}


class DataError(ConfigError):
    """The dataset on disk cannot be used. The message is one line saying what is wrong where; ``layout``, what
    was expected and where to get it, is printed by ``gimbench data check`` (the message points there)."""

    def __init__(self, message: str, layout: str | None = None, data: str | None = None) -> None:
        if layout is not None:
            message += f" (gimbench data check --data {data} --data-root PATH shows the expected layout)"
        super().__init__(message)
        self.layout = layout


@dataclass
class Skips:
    """Left-out items by reason, counted, with the first few paths of each reason."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    recent: list[tuple[str, str]] = field(default_factory=list)  # not yet handed on by ``drain``

    def add(self, reason: str, path: str) -> None:
        """Counts one left-out item."""
        self._count(reason, path)
        self.recent.append((reason, path))

    def drain(self) -> list[tuple[str, str]]:
        """The items added since the last drain (how a loader worker reports its skips to the trainer)."""
        items, self.recent = self.recent, []
        return items

    def merge(self, items: list[tuple[str, str]]) -> None:
        """Adds items drained from another copy (a loader worker's)."""
        for reason, path in items:
            self._count(reason, path)

    def _count(self, reason: str, path: str) -> None:
        if reason not in REASONS:
            raise KeyError(f"unknown skip reason {reason!r}")
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES:
            kept.append(path)

    def to_json(self) -> dict:
        """``{reason: {"count": n, "examples": [path, ...]}}`` for every reason seen."""
        return {r: {"count": n, "examples": self.examples[r]} for r, n in sorted(self.counts.items())}

    def __bool__(self) -> bool:
        return bool(self.counts)
