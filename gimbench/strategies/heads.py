"""The loss heads a method attaches to a registered network, from its layers' output shapes.

The method says which modules carry a head (every one for greedy methods, the top one for end-to-end) and
what it computes (InfoNCE, or a classifier on the labels); the network says what its layers output. The heads'
settings (prediction steps, negatives, window, PixelCNN layers) are the modality preset's, as in the paper:

- audio InfoNCE on a (1, C, L) sequence: predicts the layer's own output codes, or, on an autoregressive layer
  (CPC's GRU), the codes of its input;
- vision InfoNCE on (P, C, h, w) patch maps, P = g x g patches of one image (the paper's encoder): grid rows below;
- vision InfoNCE on any other image layer, a map (1, C, H, W) or tokens (1, T, D) of a g x g grid (a ResNet stage,
  a ViT block): the rows below, position by position (``GridInfoNCE``), as many steps as the rows allow;
- a classifier on the pooled output (over time, over space and the P patches, or over the tokens).

Heads are built after every layer, in the order of ``heads_on``: layers and heads draw their initial values
from torch's RNG in that order, so a seed gives the same parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from gimbench.errors import ConfigError
from gimbench.losses import AudioInfoNCE, GridInfoNCE, VisionInfoNCE
from gimbench.models import Group, Layers, Network, grouped, network_entry
from gimbench.models.pixelcnn import PixelCNN
from gimbench.models.presets import PRESETS, AudioSpec, VisionSpec
from gimbench.strategies.local_heads import supervised_head


def build_network(
    *, network: str, preset: str, depth: int, heads_on: list[int], context: str, classes: int = 0,
    groups: list[list[int]] | None = None, local_head: str = "linear",
) -> Network:
    """Registered ``network``'s first ``depth`` layers at ``preset``, with heads.

    Args:
        heads_on: indices of the modules that carry a loss head.
        context: "pixelcnn" puts a PixelCNN context on the top module's vision InfoNCE head.
        classes: 0 for InfoNCE heads; otherwise the heads are classifiers over this many labels.
        groups: the layers (0..depth-1) of each module, contiguous (``--modules``; ``gimbench.models.cuts``);
            ``None``: one module per layer.
        local_head: the classifier heads' kind (``--local-head``; ``gimbench.strategies.local_heads``).
    """
    entry = network_entry(network)
    layers = entry.build(preset, depth)
    modules, names = grouped(layers.modules, layers.names, groups,
                             lambda top: top in layers.autoregressive and not classes)
    tops = [g[-1] for g in groups] if groups else list(range(len(modules)))
    spec, shapes = PRESETS[preset][entry.modality], [torch.Size((1, *layers.input_shape)), *layers.output_shapes()]
    heads = {}
    for k in heads_on:
        tap = modules[k].take_top_input if isinstance(modules[k], Group) and modules[k].keeps_top_input else None
        pixelcnn = context == "pixelcnn" and k == len(modules) - 1
        heads[k] = head(layers, shapes, tops[k], spec, classes, pixelcnn, tap, local_head)
    return Network(modules, heads, names, groups, tokens=entry.modality == "vision" and len(shapes[-1]) == 3)


def head(layers: Layers, shapes: list[torch.Size], top: int, spec: AudioSpec | VisionSpec, classes: int,
         pixelcnn: bool, tap: Callable[[], torch.Tensor] | None, local_head: str = "linear") -> nn.Module:
    """The head on a module whose top layer is ``top``, given the shapes of the input and of every layer's output
    (``shapes[i + 1]``: layer i's); ``tap`` gives the top layer's input where a group keeps it."""
    out = shapes[top + 1]
    tokens = isinstance(spec, VisionSpec) and len(out) == 3
    if classes:
        return supervised_head(local_head, out, classes, layers.names[top], tokens)
    if isinstance(spec, AudioSpec) and len(out) == 3 and out[2] > spec.prediction_steps:
        recurrent = top in layers.autoregressive
        return AudioInfoNCE(
            context_dim=out[1], code_dim=shapes[top][1] if recurrent else out[1], steps=spec.prediction_steps,
            negatives=spec.negatives, window=spec.window, codes_from_input=recurrent, codes_from=tap,
        )
    found = image_head(out, spec, pixelcnn) if isinstance(spec, VisionSpec) else None
    if found is not None:
        return found
    readable = (f"audio: (1, channels, steps) with more than {spec.prediction_steps} steps"
                if isinstance(spec, AudioSpec) else
                "images: a map (1, channels, h, w) or tokens (1, 1 + g*g or g*g, width) of at least 2 rows, or the "
                f"paper's (patches, channels, h, w), the patches a square grid of more than {spec.prediction_steps + 1}"
                " rows")
    raise ConfigError(f"layer {layers.names[top]!r} outputs {tuple(out)} per example: no InfoNCE head reads that "
                      f"({readable})")


def image_head(out: torch.Size, spec: VisionSpec, pixelcnn: bool) -> nn.Module | None:
    """The InfoNCE head on an image layer's output ``out`` for one example: the paper's on P > 1 patch maps
    (P, C, h, w), the generic one on a map (1, C, H, W) or tokens (1, T, D) of at least 2 rows; ``None`` if
    neither reads it."""
    grid = math.isqrt(out[0])
    # Predictions skip the row right below a context: the grid needs rows below the steps' reach.
    if len(out) == 4 and out[0] > 1 and grid**2 == out[0] and grid > spec.prediction_steps + 1:
        context = PixelCNN(out[1], spec.pixelcnn_layers) if pixelcnn else None
        return VisionInfoNCE(channels=out[1], grid=grid, steps=spec.prediction_steps, negatives=spec.negatives,
                             context=context)
    rows = grid_rows(out) if out[0] == 1 else 0
    if rows < 2:
        return None
    channels = out[-1] if len(out) == 3 else out[1]
    context = PixelCNN(channels, spec.pixelcnn_layers) if pixelcnn else None
    return GridInfoNCE(channels=channels, steps=min(spec.prediction_steps, rows - 1), negatives=spec.negatives,
                       context=context)


def grid_rows(out: torch.Size) -> int:
    """The rows of the grid an image layer's output for one example is: a map's height, or the side of a square
    grid of tokens (after a class token), or 0 for neither."""
    if len(out) == 4:
        return out[2]
    squares = [n for n in (out[1], out[1] - 1) if n > 0 and math.isqrt(n) ** 2 == n] if len(out) == 3 else []
    return math.isqrt(squares[0]) if squares else 0
