"""Exact tensor-level memory accounting on any device: live storage bytes by category, and peaks.

A ``TorchDispatchMode`` sees every tensor an operator returns; each new storage is counted once
(views share their base's storage) and uncounted when the storage is freed (a weakref finaliser).
Tensors that exist before tracking starts (parameters, gradients, optimizer state) are registered
explicitly. Categories:

- parameter, gradient, optimizer: registered, or reclassified when autograd or the optimizer
  produces them;
- activation: storages autograd saved for backward (seen through ``saved_tensors_hooks``), also
  tallied per module that saved them (a storage saved by two modules counts for both);
- temporary: everything else.

The tracker keeps two peaks: one for the whole step and one reset at every interval boundary. It
counts only storages on its device (on a CUDA run, host tensors such as pinned negative indices are not
device memory), and remembers the address and size of every storage it first met after ``watching``
began, so the meter can tell storages allocated during the step from ones that existed before it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

CATEGORIES = ("parameter", "gradient", "optimizer", "activation", "temporary")


@dataclass
class Snapshot:
    """Live bytes at one moment, by category and by owning module."""

    live: int = 0
    by_category: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    activation_by_module: dict[int, int] = field(default_factory=dict)
    gradient_by_module: dict[int, int] = field(default_factory=dict)

    def copy(self) -> Snapshot:
        return Snapshot(self.live, dict(self.by_category), dict(self.activation_by_module),
                        dict(self.gradient_by_module))


class TensorTracker(TorchDispatchMode):
    """Counts live tensor storages while active; ``module`` names who saves activations now."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.device_type = torch.device(device).type
        self.watching = False  # set once the resident tensors are registered
        self.first_seen: dict[int, tuple[int, int]] = {}  # storage key -> (address, bytes), met while watching
        self.resident_addresses: set[int] = set()  # addresses of the storages counted before watching began
        self.now = Snapshot()
        self.step_peak = Snapshot()
        self.interval_peak = Snapshot()
        self.module = -1
        self._size: dict[int, int] = {}
        self._kind: dict[int, str] = {}
        self._owners: dict[int, set[int]] = {}
        self._finalizers: list[weakref.finalize] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.classify(t, "temporary", only_new=True)
        return out

    def classify(self, tensor: torch.Tensor, kind: str, owner: int | None = None, only_new: bool = False) -> None:
        """Count ``tensor``'s storage as ``kind`` (adding it if unseen); ``owner`` is its module."""
        if tensor.device.type != self.device_type:
            return
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key not in self._size:
            self._size[key], self._kind[key], self._owners[key] = storage.nbytes(), kind, set()
            if self.watching:
                self.first_seen[key] = (storage.data_ptr(), storage.nbytes())
            else:
                self.resident_addresses.add(storage.data_ptr())
            self._finalizers.append(weakref.finalize(storage, self._free, key))
            self._tally(key, +1)
        elif only_new or (self._kind[key] == kind and (owner is None or owner in self._owners[key])):
            return
        else:
            self._tally(key, -1)
            self._kind[key] = kind
            self._tally(key, +1)
        if owner is not None and owner not in self._owners[key]:
            self._tally(key, -1)
            self._owners[key].add(owner)
            self._tally(key, +1)
        self._grew()

    def saved(self, tensor: torch.Tensor) -> torch.Tensor:
        """Pack hook: autograd keeps ``tensor`` for backward; activations unless already resident.

        Returns a detached alias (same storage, no copy): returning ``tensor`` itself would make a saved
        output reference its own ``grad_fn``, a cycle that keeps the graph alive after an exception
        between forward and backward until the garbage collector runs."""
        storage_key = tensor.untyped_storage()._cdata
        if self._kind.get(storage_key, "temporary") in ("temporary", "activation"):
            self.classify(tensor, "activation", owner=self.module)
        return tensor.detach()

    def _tally(self, key: int, sign: int) -> None:
        size, kind = self._size[key], self._kind[key]
        self.now.by_category[kind] += sign * size
        self.now.live += sign * size
        per_module = {"activation": self.now.activation_by_module, "gradient": self.now.gradient_by_module}
        for owner in self._owners[key] if kind in per_module else ():
            per_module[kind][owner] = per_module[kind].get(owner, 0) + sign * size

    def _free(self, key: int) -> None:
        if key in self._size:
            self._tally(key, -1)
            for table in (self._size, self._kind, self._owners):
                del table[key]

    def _grew(self) -> None:
        if self.now.live >= self.step_peak.live:  # >=: a reclassification at the peak updates it
            self.step_peak = self.now.copy()
        if self.now.live >= self.interval_peak.live:
            self.interval_peak = self.now.copy()

    def reset_interval(self) -> None:
        """Start a new interval: its peak is what is live now."""
        self.interval_peak = self.now.copy()

    def close(self) -> None:
        """Stop watching storages (their finalisers would otherwise outlive the tracker)."""
        for f in self._finalizers:
            f.detach()
        self._finalizers.clear()
