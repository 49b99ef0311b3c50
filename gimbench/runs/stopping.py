"""SIGINT, SIGTERM and SIGHUP: during a run the first asks it to stop after the current step, the second quits
at once; before a run has begun (imports, building, the batch-size search) the first ends the command in one line.

Quitting at once is safe because every file of a run folder is written under a temporary name and
renamed into place: a kill leaves each file whole under its final name, or absent. SIGHUP (a closed terminal, a
dropped ssh) is a stop like SIGTERM: by default it killed a run and lost all it had trained. After it, output
meant for the terminal (gone) is dropped instead of failing the run with EIO.

Light on purpose (``signal``, ``os``, ``sys`` only): ``python -m gimbench`` installs ``until_run`` before it
imports torch, so a Ctrl-C while importing ends in one line instead of a traceback.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
from collections.abc import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def drop_terminal_output(signum: int) -> None:
    """After a hangup, point stdout and stderr at /dev/null where they were the terminal: writing to it now
    fails (EIO), which would end a run before it saves; output to files and pipes stays as it is."""
    if signum != signal.SIGHUP:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            if not stat.S_ISCHR(os.fstat(fd).st_mode):  # a device: isatty() fails on a terminal that hung up
                continue
        except (AttributeError, OSError, ValueError):  # no such stream, or not a file
            continue
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)


def say(line: str) -> None:
    """Write one line to stderr; a terminal that is gone does not stop what comes next."""
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def until_run() -> None:
    """From the start of the ``gimbench`` command until a run or sweep installs its own handlers (and again
    after): the first SIGINT, SIGTERM or SIGHUP raises ``KeyboardInterrupt(signal)``, whose
    ``ended_by`` is the command's last line and exit status; any later one is ignored while that unwinds (a
    second Ctrl-C gave a traceback from inside an import)."""
    heard: list[signal.Signals] = []

    def handle(signum: int, frame: object) -> None:
        if heard:
            return
        heard.append(signal.Signals(signum))
        for s in SIGNALS:  # ignored by the system from now on: Python's exit would reset a handler to the default
            signal.signal(s, signal.SIG_IGN)
        drop_terminal_output(signum)
        raise KeyboardInterrupt(heard[0])

    for s in SIGNALS:
        signal.signal(s, handle)


def ended_by(interrupt: KeyboardInterrupt) -> tuple[str, int]:
    """The one line (``gimbench: interrupted by SIGTERM ...``) and the exit status (128 + the signal) of a
    command ended by ``interrupt``: raised by ``until_run``'s handler, or Python's own for a Ctrl-C."""
    given = interrupt.args[0] if interrupt.args else None
    sig = given if isinstance(given, signal.Signals) else signal.SIGINT
    notes = "".join(f"; {note}" for note in getattr(interrupt, "__notes__", []))
    return f"gimbench: interrupted by {sig.name}{notes}\n", 128 + sig


class Interrupted(Exception):
    """Raised between units of work (probes) once a stop was requested."""


class StopSignals:
    """A context in which SIGINT/SIGTERM/SIGHUP set ``signal`` instead of killing the process.

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
        drop_terminal_output(signum)
        if self.signal is not None:
            say("gimbench: stopped at once; files already written are intact\n")
            raise SystemExit(128 + signum)
        self.signal = signal.Signals(signum)
        if self.announce:
            say(f"gimbench: {self.signal.name}: stopping after the current step (send it again to quit at once)\n")

    def requested(self) -> bool:
        return self.signal is not None

    def checked(self, callback: Callable) -> Callable:
        """``callback`` that first raises ``Interrupted`` if a stop was requested."""

        def call(*args):
            if self.signal is not None:
                raise Interrupted
            return callback(*args)

        return call
