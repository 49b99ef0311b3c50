"""The process's peak resident set size, reported beside the allocator's figures as a cross-check."""

from __future__ import annotations

from pathlib import Path


def reset_rss_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def rss_peak_bytes() -> int | None:
    """The process's peak resident set size since the last reset (VmHWM), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None
