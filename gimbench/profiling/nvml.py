"""NVML's device-wide used memory, sampled in the background while memory-tracked steps run.

NVML numbers devices its own way (all GPUs of the machine, by PCI order) while CUDA numbers only the
visible ones (``CUDA_VISIBLE_DEVICES`` remaps and reorders them), so the device is found by its UUID,
or its PCI bus id where the UUID is not known to NVML, never by its CUDA index. NVML's figure covers
every process on the device, CUDA contexts and the caching allocator's free blocks: it is a device-wide
cross-check, never a per-module figure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

SAMPLE_SECONDS = 0.01  # one reading every 10 ms


def nvml_uuid(properties) -> str:
    """NVML's spelling of a CUDA device's UUID ("GPU-<hex groups>")."""
    text = str(properties.uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def nvml_bus_id(properties) -> str:
    """NVML's spelling of a CUDA device's PCI bus id ("domain:bus:device.function", hex)."""
    return f"{properties.pci_domain_id:08X}:{properties.pci_bus_id:02X}:{properties.pci_device_id:02X}.0"


def device_handle(nvml, properties):
    """The NVML handle of the CUDA device with ``properties``: by UUID, else by PCI bus id."""
    try:
        return nvml.nvmlDeviceGetHandleByUUID(nvml_uuid(properties))
    except Exception:  # an NVML without this UUID (e.g. a MIG slice): the bus id names the board
        return nvml.nvmlDeviceGetHandleByPciBusId(nvml_bus_id(properties))


class NvmlSampler:
    """Peak of NVML's used memory on one CUDA device while ``sampling()`` is active.

    ``nvml`` (the ``pynvml`` module unless given) and ``properties`` (``torch.cuda``'s device
    properties unless given) can be replaced, so the logic runs without a GPU in tests."""

    def __init__(self, device: torch.device, nvml=None, properties=None, seconds: float = SAMPLE_SECONDS) -> None:
        self.device, self.seconds = device, seconds
        self._nvml, self._properties = nvml, properties
        self.peak_bytes: int | None = None
        self.samples = 0
        self.note = "not a CUDA device" if device.type != "cuda" else "NVML not sampled yet"

    @contextmanager
    def sampling(self) -> Iterator[None]:
        """Read the device's used memory every ``seconds`` in a thread while the block runs."""
        if self.device.type != "cuda":
            yield
            return
        try:
            nvml = self._nvml
            if nvml is None:
                import pynvml as nvml
            nvml.nvmlInit()
            properties = self._properties or torch.cuda.get_device_properties(self.device)
            handle = device_handle(nvml, properties)
        except Exception as e:  # NVML missing or refusing is a note, never a crash
            self.note = f"NVML unavailable: {e}"
            yield
            return
        done = threading.Event()

        def read() -> None:
            used = int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
            self.peak_bytes = used if self.peak_bytes is None else max(self.peak_bytes, used)
            self.samples += 1

        def loop() -> None:
            while not done.wait(self.seconds):
                read()

        thread = threading.Thread(target=loop, name="gimbench-nvml", daemon=True)
        read()
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            read()
            nvml.nvmlShutdown()
            self.note = (f"NVML device-wide used memory (every process, contexts, cached blocks): peak of "
                         f"{self.samples} samples, one every {self.seconds * 1e3:.0f} ms, during the memory steps")
