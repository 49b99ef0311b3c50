"""SIGINT, SIGTERM and SIGHUP during a sweep: passed on to the run in progress, which stops with a checkpoint.

Each run is started in a process group of its own, so a terminal's Ctrl-C (sent to the sweep's group)
reaches it once, through the sweep, never twice. The first signal asks the run to stop after its current
step and the sweep to start no further run; a second is passed on too (the run then quits at once). A
run still going ``GRACE_S`` seconds after the first signal is killed. On Linux a run also receives SIGTERM
when the sweep dies without a word (``SIGKILL``), so it never trains on unrecorded.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time

from gimbench.runs.stopping import StopSignals, drop_terminal_output, say

GRACE_S = 60.0
PR_SET_PDEATHSIG = 1


class ForwardSignals(StopSignals):
    """A ``StopSignals`` whose signals also go to ``child``, the run in progress (if any)."""

    def __init__(self) -> None:
        super().__init__(announce=True)
        self.child: subprocess.Popen | None = None
        self.since: float | None = None  # when the first signal came (time.monotonic)

    def _handle(self, signum: int, frame: object) -> None:
        drop_terminal_output(signum)
        if self.signal is None:
            self.signal, self.since = signal.Signals(signum), time.monotonic()
            say(f"gimbench: {self.signal.name}: stopping the sweep after the run in progress has saved (send it "
                "again to hurry it)\n")
        if self.child is not None:
            self.child.send_signal(signum)  # does nothing once the child has ended

    def wait(self, child: subprocess.Popen) -> int:
        """Wait for ``child`` to end, passing signals on; kill it ``GRACE_S`` after the first. Its exit code."""
        self.child = child
        try:
            while True:
                try:
                    return child.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    if self.since is not None and time.monotonic() - self.since > GRACE_S:
                        child.kill()
        finally:
            self.child = None


def _die_with_parent() -> None:  # runs in the child between fork and exec: a plain C call, nothing else
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


_LIBC = ctypes.CDLL(None) if sys.platform == "linux" else None
START_OPTIONS = {"process_group": 0, **({"preexec_fn": _die_with_parent} if _LIBC is not None else {})}
