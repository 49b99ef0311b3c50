"""Encoders built as ordered lists of modules, plus the loss heads a method attaches to them.

``build_network`` is the one entry point: the method says where losses go (every module for greedy
methods, the top one for end-to-end), the modality and preset say what the modules are.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from gimbench.losses import AudioInfoNCE, VisionInfoNCE
from gimbench.models.audio import GRUModule, audio_lengths, audio_modules
from gimbench.models.pixelcnn import PixelCNN
from gimbench.models.presets import PRESETS, AudioSpec, VisionSpec
from gimbench.models.vision import grid_size, vision_channels, vision_modules

MODALITIES = ("audio", "vision")
REFERENCE_DEPTH = {"audio": 6, "vision": 3}
MAX_DEPTH = 16


class Network(nn.Module):
    """An encoder (``encoder[k]`` is module k) and loss heads keyed by the module they sit on.

    Module k *owns* ``encoder[k]`` and its head; strategies optimise and report per owner.
    """

    def __init__(self, modules: list[nn.Module], heads: dict[int, nn.Module], names: list[str]) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(modules)
        self.heads = nn.ModuleDict({str(k): head for k, head in heads.items()})
        self.names = names

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


def audio_network(spec: AudioSpec, depth: int, heads_on: list[int]) -> Network:
    """Audio encoder of ``depth`` modules with InfoNCE heads on the modules in ``heads_on``."""
    modules = audio_modules(spec, depth)
    heads = {}
    for k in heads_on:
        recurrent = isinstance(modules[k], GRUModule)
        heads[k] = AudioInfoNCE(
            context_dim=spec.hidden if recurrent else spec.channels, code_dim=spec.channels,
            steps=spec.prediction_steps, negatives=spec.negatives, window=spec.window,
            codes_from_input=recurrent,
        )
    names = [f"conv{i + 1}" for i in range(len(modules))]
    if isinstance(modules[-1], GRUModule):
        names[-1] = "gru"
    return Network(modules, heads, names)


def vision_network(spec: VisionSpec, depth: int, heads_on: list[int], context: str) -> Network:
    """Vision encoder of ``depth`` modules; the top head gets a PixelCNN when ``context`` says so."""
    channels = vision_channels(spec, depth)
    heads = {}
    for k in heads_on:
        ctx = PixelCNN(channels[k], spec.pixelcnn_layers) if context == "pixelcnn" and k == depth - 1 else None
        heads[k] = VisionInfoNCE(
            channels=channels[k], grid=grid_size(spec), steps=spec.prediction_steps,
            negatives=spec.negatives, context=ctx,
        )
    names = [f"stage{i + 1}" if i < len(spec.widths) else f"extra{i + 1}" for i in range(depth)]
    return Network(vision_modules(spec, depth), heads, names)


def build_network(*, modality: str, preset: str, depth: int, heads_on: list[int], context: str) -> Network:
    """The network for a resolved configuration."""
    spec = PRESETS[preset][modality]
    if modality == "audio":
        return audio_network(spec, depth, heads_on)
    return vision_network(spec, depth, heads_on, context)


def sequence_lengths(preset: str, depth: int) -> list[int]:
    """Audio sequence length after each module; used to validate depth against prediction steps."""
    return audio_lengths(PRESETS[preset]["audio"], depth)
