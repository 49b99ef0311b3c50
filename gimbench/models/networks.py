"""The network registry: each entry builds an encoder's layers for a preset and a depth, and its layers say
their output shapes, from which a method attaches its loss heads (``gimbench.strategies.heads``).

A network is a plain list of layers, in order; ``--depth N`` builds the first N of them (for the paper's
networks, the depth rule of ``audio.py`` and ``vision.py``), ``--modules K`` cuts them into K gradient-isolated
modules. Registering one is the decorator ``register_network`` on a function ``(preset, depth) -> Layers``
(docs/extending.md); a network of your own given as ``--network file.py:make`` is an entry too
(``gimbench.models.user``), made when first named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from gimbench.registry import Registry

NETWORKS = Registry("network")
MAX_DEPTH = 16  # the paper networks' depth rule grows them to this many layers


@dataclass(frozen=True)
class Layers:
    """A network built for one preset and depth: its layers, their names, and what its input looks like."""

    modules: list[nn.Module]
    names: list[str]
    input_shape: tuple[int, ...]  # one example, without the batch: audio (1, samples), vision (channels, h, w)
    # Layers whose output is a context over their input (CPC's GRU): an InfoNCE head there predicts that input.
    autoregressive: tuple[int, ...] = ()

    def output_shapes(self) -> list[torch.Size]:
        """Each layer's output shape for a batch of one example: shapes only, run on the meta device (no memory
        used, no random number drawn). The batch dimension is then the rows one example becomes (the vision
        encoder's patches). A layer with an ``output_shape(input_shape)`` method says its own instead: a recurrent
        layer traced on the meta device runs its cell once per time step."""
        h, shapes = torch.empty(1, *self.input_shape, device="meta"), []
        for layer in self.modules:
            h = meta_output(layer, h)
            shapes.append(h.shape)
        return shapes


def meta_output(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``layer``'s output for the meta tensor ``h``, with meta copies of its parameters and buffers (its own stay
    as they are)."""
    if callable(getattr(layer, "output_shape", None)):  # not traced: a GRU on meta runs once per time step
        return torch.empty(layer.output_shape(h.shape), device="meta")
    tensors = (*layer.named_parameters(), *layer.named_buffers())
    return functional_call(layer, {name: torch.empty_like(t, device="meta") for name, t in tensors}, (h,))


def no_problem(preset: str, depth: int) -> None:
    """Every depth up to ``max_depth`` trains."""


@dataclass(frozen=True)
class NetworkEntry:
    """A registered network: how to build its layers and what ``config.resolve`` checks."""

    build: Callable[[str, int], Layers]  # (preset, depth) -> its first ``depth`` layers, initialised from torch's RNG
    modality: str  # the data it reads ("audio" or "vision"), and the presets its sizes and heads' settings come from
    reference_depth: int  # --depth when it is not given
    max_depth: int
    # (preset, depth) -> why that depth cannot train, or None (the audio encoder's sequences must outlast the
    # prediction steps)
    depth_problem: Callable[[str, int], str | None] = no_problem
    # preset -> one input example's shape (what the synthetic data is made to); None: read from a depth-1 build
    input_shape: Callable[[str], tuple[int, ...]] | None = None
    # preset -> how many layers the network has there, where presets differ (resnet110-cifar: 55 at paper, 7 at
    # tiny); None: max_depth at every preset
    layer_count: Callable[[str], int] | None = None

    @property
    def description(self) -> str:
        """The first line of the build function's docstring (``gimbench list`` shows it)."""
        return ((self.build.__doc__ or "").strip().splitlines() or [""])[0]

    def reference_at(self, preset: str) -> int:
        """``--depth`` when it is not given, at ``preset``."""
        return min(self.reference_depth, self.max_at(preset))

    def max_at(self, preset: str) -> int:
        """The deepest ``--depth`` at ``preset``."""
        return self.max_depth if self.layer_count is None else min(self.max_depth, self.layer_count(preset))

    def input_of(self, preset: str) -> tuple[int, ...]:
        """The shape of one input example at ``preset``, without the batch. Without an ``input_shape`` function it
        is read from the network built one layer deep on the meta device (no memory), with torch's RNG state put
        back (a seed's draws stay the run's)."""
        if self.input_shape is not None:
            return tuple(self.input_shape(preset))
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            return tuple(self.build(preset, 1).input_shape)


def register_network(name: str, *, modality: str, reference_depth: int, max_depth: int | None = None,
                     depth_problem: Callable[[str, int], str | None] = no_problem,
                     input_shape: Callable[[str], tuple[int, ...]] | None = None,
                     layer_count: Callable[[str], int] | None = None) -> Callable:
    """Decorator that registers a ``(preset, depth) -> Layers`` function as network ``name``; ``max_depth``
    defaults to ``reference_depth`` (a network of that many layers); ``input_shape(preset)`` saves building the
    network to learn its input's shape (``NetworkEntry.input_of``); ``layer_count(preset)`` is for a network
    with fewer layers at some preset."""

    def add(build: Callable[[str, int], Layers]) -> Callable[[str, int], Layers]:
        NETWORKS.register(name)(NetworkEntry(build, modality, reference_depth, max_depth or reference_depth,
                                             depth_problem, input_shape, layer_count))
        return build

    return add
