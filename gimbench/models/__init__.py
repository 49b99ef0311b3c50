"""Encoders as ordered lists of layers, registered by name (``NETWORKS``), and the ``Network`` a method trains:
the layers as gradient-isolated modules, with the loss heads the method attached (``gimbench.strategies.heads``).

Models know nothing of losses: a registered network says what its layers are and their output shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from gimbench.models import audio, cifar_resnet, mfcc, resnets, vision, vit  # noqa: F401  (each registers its network)
from gimbench.models.audio import audio_lengths
from gimbench.models.group import Group
from gimbench.models.networks import MAX_DEPTH, NETWORKS, Layers, NetworkEntry, register_network
from gimbench.models.presets import PRESETS
from gimbench.models.user import network_entry, register_make

# The network each modality trains when none is named: the paper's encoders.
PAPER_NETWORKS = {"audio": "cpc-audio", "vision": "gim-vision"}
MODALITIES = tuple(PAPER_NETWORKS)
REFERENCE_DEPTH = {modality: NETWORKS[name].reference_depth for modality, name in PAPER_NETWORKS.items()}

__all__ = ["MAX_DEPTH", "MODALITIES", "NETWORKS", "PAPER_NETWORKS", "REFERENCE_DEPTH", "Group", "Layers", "Network",
           "NetworkEntry", "grouped", "network_entry", "register_make", "register_network", "sequence_lengths"]


class Network(nn.Module):
    """An encoder (``encoder[k]`` is module k) and loss heads keyed by the module they sit on.

    Module k *owns* ``encoder[k]`` and its head; strategies optimise and report per owner.
    """

    def __init__(self, modules: list[nn.Module], heads: dict[int, nn.Module], names: list[str],
                 layers: list[list[int]] | None = None, *, tokens: bool = False) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(modules)
        self.heads = nn.ModuleDict({str(k): head for k, head in heads.items()})
        self.names = names
        self.layers = layers or [[k] for k in range(len(modules))]  # the encoder layers each module holds
        self.tokens = tokens  # the modules output image tokens (B, T, D), pooled over T (a ViT), not (B, C, L)

    def __len__(self) -> int:
        return len(self.encoder)

    def head(self, k: int) -> nn.Module | None:
        """The loss head on module k, if the method put one there."""
        return self.heads[str(k)] if str(k) in self.heads else None  # noqa: SIM401 (ModuleDict has no get)

    def owned_parameters(self, k: int) -> Iterator[nn.Parameter]:
        """Parameters of module k and of its head."""
        yield from self.encoder[k].parameters()
        head = self.head(k)
        if head is not None:
            yield from head.parameters()

    def features(self, x: torch.Tensor, upto: int) -> torch.Tensor:
        """Output of module ``upto`` (0-based) for input ``x``; gradient flow is the caller's business."""
        for module in self.encoder[: upto + 1]:
            x = module(x)
        return x


def grouped(layers: list[nn.Module], names: list[str], groups: list[list[int]] | None,
            keeps_top_input: Callable[[int], bool]) -> tuple[list[nn.Module], list[str]]:
    """The modules and their names: the layers themselves, or one ``Group`` of layers per entry of ``groups``
    (named by their layers, e.g. ``conv1-conv2``); ``keeps_top_input(i)``: whether a group topped by layer i
    keeps that layer's input for its head (``Group.take_top_input``)."""
    if groups is None or len(groups) == len(layers):
        return layers, names
    modules = [Group([layers[i] for i in g], keeps_top_input=len(g) > 1 and keeps_top_input(g[-1]))
               for g in groups]
    return modules, ["-".join(names[i] for i in (g if len(g) <= 2 else (g[0], g[-1]))) for g in groups]


def sequence_lengths(preset: str, depth: int) -> list[int]:
    """Sequence length after each layer of the paper's audio encoder (``--local-grad auto`` compares them with the
    loss's window)."""
    return audio_lengths(PRESETS[preset]["audio"], depth)
