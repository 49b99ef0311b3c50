"""Linear probes capped at a few epochs, for tests about what a probed run reads and writes rather than what its
probes learn (tests/test_probe.py checks the probes' training): the probe block keeps its shape, and a probe
run's cost halves (training the probes is about half of it, extracting the features the other half)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

EPOCHS = 2


@contextlib.contextmanager
def short_probes() -> Iterator[None]:
    """Within the block every probe trains at most ``EPOCHS`` epochs."""
    # Imported here: ``import gimbench.probe`` before ``gimbench.data`` meets an import cycle (data -> probe).
    from gimbench import probe

    capped = {kind: settings | {"max_epochs": EPOCHS} for kind, settings in probe.SETTINGS.items()}
    with mock.patch.dict(probe.SETTINGS, capped):
        yield
