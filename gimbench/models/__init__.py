"""Encoders built as ordered lists of modules, plus the loss heads a method attaches to them.

``build_network`` is the one entry point: the method says where losses go (every module for greedy
methods, the top one for end-to-end), the modality and preset say what the modules are.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from gimbench.losses import AudioInfoNCE, Classifier, VisionInfoNCE
from gimbench.models.audio import GRUModule, audio_lengths, audio_modules
from gimbench.models.mfcc import MFCCFeatures
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


def audio_network(spec: AudioSpec, depth: int, heads_on: list[int], classes: int) -> Network:
    """Audio encoder of ``depth`` modules with heads on the modules in ``heads_on``: InfoNCE, or a
    speaker classifier when ``classes`` is set."""
    modules = audio_modules(spec, depth)
    heads = {}
    for k in heads_on:
        if classes:
            width = spec.hidden if isinstance(modules[k], GRUModule) else spec.channels
            heads[k] = Classifier(channels=width, classes=classes)
            continue
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


def vision_network(spec: VisionSpec, depth: int, heads_on: list[int], context: str, classes: int) -> Network:
    """Vision encoder of ``depth`` modules with InfoNCE heads (the top one with a PixelCNN when
    ``context`` says so), or class classifiers when ``classes`` is set."""
    channels = vision_channels(spec, depth)
    heads = {}
    for k in heads_on:
        if classes:
            heads[k] = Classifier(channels=channels[k], classes=classes, patches=grid_size(spec) ** 2)
            continue
        ctx = PixelCNN(channels[k], spec.pixelcnn_layers) if context == "pixelcnn" and k == depth - 1 else None
        heads[k] = VisionInfoNCE(
            channels=channels[k], grid=grid_size(spec), steps=spec.prediction_steps,
            negatives=spec.negatives, context=ctx,
        )
    names = [f"stage{i + 1}" if i < len(spec.widths) else f"extra{i + 1}" for i in range(depth)]
    return Network(vision_modules(spec, depth), heads, names)


def build_network(
    *, modality: str, preset: str, depth: int, heads_on: list[int], context: str, classes: int = 0,
    encoder: str = "trained",
) -> Network:
    """The network for a resolved configuration.

    Args:
        classes: 0 for InfoNCE heads; otherwise the heads are classifiers over this many labels.
        encoder: "trained" (the modality's encoder) or "mfcc" (fixed MFCC features, one module).
    """
    if encoder == "mfcc":
        return Network([MFCCFeatures()], {}, ["mfcc"])
    spec = PRESETS[preset][modality]
    if modality == "audio":
        return audio_network(spec, depth, heads_on, classes)
    return vision_network(spec, depth, heads_on, context, classes)


def sequence_lengths(preset: str, depth: int) -> list[int]:
    """Audio sequence length after each module; used to validate depth against prediction steps."""
    return audio_lengths(PRESETS[preset]["audio"], depth)
