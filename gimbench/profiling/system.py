"""Process- and device-level memory figures used as cross-checks: peak RSS and NVML."""

from __future__ import annotations

from pathlib import Path

import torch


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


def nvml_used_bytes(device: torch.device) -> tuple[int | None, str]:
    """NVML's used memory of the whole device (every process, contexts, cached blocks), and a note."""
    if device.type != "cuda":
        return None, "not a CUDA device"
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            index = device.index if device.index is not None else torch.cuda.current_device()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used), "NVML device-wide used memory"
        finally:
            pynvml.nvmlShutdown()
    except Exception as e:  # NVML missing or refusing is a note, never a crash
        return None, f"NVML unavailable: {e}"
