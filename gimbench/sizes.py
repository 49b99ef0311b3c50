"""Memory sizes as users write them: ``512MiB``, ``8GiB``, ``1.5GB``, or plain bytes."""

from __future__ import annotations

import re

UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes in ``text``: KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024, a bare
    number is bytes; units are case-insensitive.

    Raises:
        ValueError: with a one-line message for anything else, or a size of zero bytes.
    """
    match = SIZE.fullmatch(str(text))
    unit = match.group(2).upper() if match else None
    if unit not in UNITS:
        raise ValueError(f"{text!r} is not a size; use e.g. 512MiB, 8GiB or 1.5GB "
                         f"(KB/MB/GB = powers of 1000, KiB/MiB/GiB = powers of 1024)")
    size = int(float(match.group(1)) * UNITS[unit])
    if size <= 0:
        raise ValueError(f"{text!r} is zero bytes; the budget must be larger")
    return size
