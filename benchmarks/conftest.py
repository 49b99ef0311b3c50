"""pytest-benchmark setup: the device every benchmark runs on, recorded in the machine info."""

from __future__ import annotations

import pytest
import torch

from gimbench.config import resolve_device
from gimbench.runs.environment import describe


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    """Add the device the suite trains on (CUDA when available), torch and CUDA versions."""
    env = describe(torch.device(resolve_device("auto")))
    machine_info["gimbench"] = env
    machine_info.update(device_name=env["device_name"], torch_version=env["torch"], cuda_version=env["cuda"])


MEMORY = pytest.StashKey[list]()
MIB = 2**20


@pytest.fixture
def record_memory(request):
    """``record_memory(info)``: keep a benchmark's memory figures for the terminal summary."""
    def record(info: dict) -> None:
        request.config.stash.setdefault(MEMORY, []).append((request.node.name, info))

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """After pytest-benchmark's timing table: each benchmark's step peak and greedy floor (MiB), which that
    table cannot show (they are in the JSON's extra_info)."""
    rows = config.stash.get(MEMORY, [])
    if not rows:
        return
    backend = rows[0][1]["memory_backend"]
    terminalreporter.section(f"memory per training step (MiB, {backend})")
    width = max(len(name) for name, _ in rows)
    terminalreporter.write_line(f"{'benchmark':<{width}}  {'peak':>9}  {'floor':>9}")
    for name, info in rows:
        floor = "-" if info.get("floor_bytes") is None else f"{info['floor_bytes'] / MIB:9.1f}"
        terminalreporter.write_line(f"{name:<{width}}  {info['step_peak_bytes'] / MIB:9.1f}  {floor:>9}")
