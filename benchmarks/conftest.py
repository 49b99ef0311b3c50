"""pytest-benchmark setup: the device every benchmark runs on, recorded in the machine info."""

from __future__ import annotations

import torch

from gimbench.config import resolve_device
from gimbench.environment import describe


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    """Add the device the suite trains on (CUDA when available), torch and CUDA versions."""
    env = describe(torch.device(resolve_device("auto")))
    machine_info["gimbench"] = env
    machine_info.update(device_name=env["device_name"], torch_version=env["torch"], cuda_version=env["cuda"])
