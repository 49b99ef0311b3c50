"""SIGINT and SIGTERM during a run: the first asks it to stop after the current step, the second quits at once.

Quitting at once is safe because every file of a run folder is written under a temporary name and
renamed into place: a kill leaves each file whole under its final name, or absent.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Raised between units of work (probes) once a stop was requested."""


class StopSignals:
    """A context in which SIGINT/SIGTERM set ``signal`` instead of killing the process.

    Handlers are installed only in the main thread (Python allows no other); elsewhere the
    context does nothing and a stop is never requested.
    """

    def __init__(self, *, announce: bool = True) -> None:
        self.announce = announce  # say so on stderr (under torchrun only rank 0 does)
        self.signal: signal.Signals | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:
            sys.stderr.write("gimbench: stopped at once; files already written are intact\n")
            raise SystemExit(128 + signum)
        self.signal = signal.Signals(signum)
        if self.announce:
            sys.stderr.write(f"gimbench: {self.signal.name}: stopping after the current step "
                             "(send it again to quit at once)\n")

    def requested(self) -> bool:
        return self.signal is not None

    def checked(self, callback: Callable) -> Callable:
        """``callback`` that first raises ``Interrupted`` if a stop was requested."""

        def call(*args):
            if self.signal is not None:
                raise Interrupted
            return callback(*args)

        return call
