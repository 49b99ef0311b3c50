"""Encoders built as ordered lists of modules, plus the loss heads a method attaches to them.

``build_network`` is the one entry point: the method says where losses go (every module for greedy
methods, the top one for end-to-end), the modality and preset say what the modules are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from gimbench.losses import AudioInfoNCE, Classifier, VisionInfoNCE
from gimbench.models.audio import GRUModule, audio_lengths, audio_modules
from gimbench.models.group import Group
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

    def __init__(self, modules: list[nn.Module], heads: dict[int, nn.Module], names: list[str],
                 layers: list[list[int]] | None = None) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(modules)
        self.heads = nn.ModuleDict({str(k): head for k, head in heads.items()})
        self.names = names
        self.layers = layers or [[k] for k in range(len(modules))]  # the encoder layers each module holds

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
            keeps_top_input: Callable[[nn.Module], bool]) -> tuple[list[nn.Module], list[str]]:
    """The modules and their names: the layers themselves, or one ``Group`` of layers per entry of ``groups``
    (named by their layers, e.g. ``conv1-conv2``)."""
    if groups is None or len(groups) == len(layers):
        return layers, names
    modules = [Group([layers[i] for i in g], keeps_top_input=len(g) > 1 and keeps_top_input(layers[g[-1]]))
               for g in groups]
    return modules, ["-".join(names[i] for i in (g if len(g) <= 2 else (g[0], g[-1]))) for g in groups]


def audio_network(spec: AudioSpec, depth: int, heads_on: list[int], classes: int,
                  groups: list[list[int]] | None = None) -> Network:
    """Audio encoder of ``depth`` layers, as ``groups`` of them (one module per layer by default), with heads on
    the modules in ``heads_on`` (each on its module's top layer): InfoNCE, or a speaker classifier when
    ``classes`` is set."""
    layers = audio_modules(spec, depth)
    names = [f"conv{i + 1}" for i in range(len(layers))]
    if isinstance(layers[-1], GRUModule):
        names[-1] = "gru"
    modules, names = grouped(layers, names, groups, lambda top: isinstance(top, GRUModule) and not classes)
    heads = {}
    for k in heads_on:
        top = layers[groups[k][-1]] if groups else modules[k]
        recurrent = isinstance(top, GRUModule)
        tap = modules[k].take_top_input if isinstance(modules[k], Group) and modules[k].keeps_top_input else None
        if classes:
            heads[k] = Classifier(channels=spec.hidden if recurrent else spec.channels, classes=classes)
            continue
        heads[k] = AudioInfoNCE(
            context_dim=spec.hidden if recurrent else spec.channels, code_dim=spec.channels,
            steps=spec.prediction_steps, negatives=spec.negatives, window=spec.window,
            codes_from_input=recurrent,
            codes_from=tap,
        )
    return Network(modules, heads, names, groups)


def vision_network(spec: VisionSpec, depth: int, heads_on: list[int], context: str, classes: int,
                   groups: list[list[int]] | None = None) -> Network:
    """Vision encoder of ``depth`` layers (stages), as ``groups`` of them, with InfoNCE heads on the modules in
    ``heads_on`` (the top module's with a PixelCNN when ``context`` says so), or class classifiers when
    ``classes`` is set."""
    channels = vision_channels(spec, depth)
    layers = vision_modules(spec, depth)
    names = [f"stage{i + 1}" if i < len(spec.widths) else f"extra{i + 1}" for i in range(depth)]
    modules, names = grouped(layers, names, groups, lambda top: False)
    tops = [g[-1] for g in groups] if groups else list(range(depth))
    heads = {}
    for k in heads_on:
        width = channels[tops[k]]
        if classes:
            heads[k] = Classifier(channels=width, classes=classes, patches=grid_size(spec) ** 2)
            continue
        ctx = PixelCNN(width, spec.pixelcnn_layers) if context == "pixelcnn" and k == len(modules) - 1 else None
        heads[k] = VisionInfoNCE(
            channels=width, grid=grid_size(spec), steps=spec.prediction_steps, negatives=spec.negatives, context=ctx,
        )
    return Network(modules, heads, names, groups)


def build_network(
    *, modality: str, preset: str, depth: int, heads_on: list[int], context: str, classes: int = 0,
    encoder: str = "trained", groups: list[list[int]] | None = None,
) -> Network:
    """The network for a resolved configuration.

    Args:
        heads_on: indices of the modules that carry a loss head.
        classes: 0 for InfoNCE heads; otherwise the heads are classifiers over this many labels.
        encoder: "trained" (the modality's encoder) or "mfcc" (fixed MFCC features, one module).
        groups: the layers (0..depth-1) of each module, contiguous (``--modules``; ``gimbench.models.cuts``);
            ``None``: one module per layer.
    """
    if encoder == "mfcc":
        return Network([MFCCFeatures()], {}, ["mfcc"])
    spec = PRESETS[preset][modality]
    if modality == "audio":
        return audio_network(spec, depth, heads_on, classes, groups)
    return vision_network(spec, depth, heads_on, context, classes, groups)


def sequence_lengths(preset: str, depth: int) -> list[int]:
    """Audio sequence length after each module; used to validate depth against prediction steps."""
    return audio_lengths(PRESETS[preset]["audio"], depth)
