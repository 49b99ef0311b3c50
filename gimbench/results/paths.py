"""Folders gimbench writes to or reports on must have UTF-8 names: results.json, sweep.json and reports are
UTF-8 text that records them (a report's pages, a resume command). A name that is not (``$'cmp\\xff'``) is
refused before anything runs: accepted, it trained every row of a comparison and then failed writing the report
(issue 28)."""

from __future__ import annotations

import os
from pathlib import Path

from gimbench.errors import ConfigError


def check_utf8(path: str | Path, flag: str) -> None:
    """``ConfigError`` (one line naming ``flag``) where ``path`` is not valid UTF-8."""
    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise ConfigError(f"{flag} {shown}: not a UTF-8 name; gimbench records the folders it works on in UTF-8 "
                          "files (results.json, sweep.json, reports): choose or rename to a UTF-8 name") from None
