"""What a result was measured on: versions, device, commit."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch

from gimbench.device import name as device_name


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit of the gimbench checkout, if it is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def describe(device: torch.device) -> dict:
    """The environment block of results.json."""
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": device_name(device, cpu_name),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
