"""The audio encoder of REFERENCE.md as an ordered list of gradient-isolatable modules.

Depth rule (one rule that shrinks and grows the encoder): depth N has N modules. For N >= 2 the last
module is the GRU (the reference's autoregressor) and the N - 1 before it are conv modules; the first
five use the reference's kernels/strides/padding, every further one is a constant-resolution conv
(kernel 3, stride 1, padding 1) at the same width. Depth 1 is conv1 alone. Depth 6 is the reference.
"""

from __future__ import annotations

import torch
from torch import nn

from gimbench.models.networks import MAX_DEPTH, Layers, register_network
from gimbench.models.presets import PRESETS, AudioSpec

# (kernel, stride, padding) of the reference's five conv layers; later layers keep the resolution.
REFERENCE_CONVS = ((10, 5, 2), (8, 4, 2), (4, 2, 2), (4, 2, 2), (4, 2, 1))
EXTRA_CONV = (3, 1, 1)


class ConvModule(nn.Sequential):
    """Conv1d followed by ReLU; maps (B, C_in, L) to (B, C_out, L').

    He (Kaiming) initialisation with zero bias: PyTorch's default conv init shrinks the signal about
    4x per conv + ReLU, so five layers deep the features are mostly bias and the time-pooled outputs
    barely differ between utterances (measured: a supervised speaker classifier stuck at ln 20 for
    ~500 steps with the default, learning within 300 steps with He init).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> None:
        conv = nn.Conv1d(in_channels, out_channels, kernel, stride, padding)
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        super().__init__(conv, nn.ReLU())
        self.geometry = (kernel, stride, padding)


class GRUModule(nn.Module):
    """One-layer GRU over time; maps (B, C, L) to (B, hidden, L) so every module speaks (B, C, L)."""

    def __init__(self, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_channels, hidden, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.transpose(1, 2))
        return out.transpose(1, 2)

    def output_shape(self, shape: torch.Size) -> torch.Size:
        """(B, hidden, L) for an input of ``shape`` (B, C, L), without running the GRU."""
        return torch.Size((shape[0], self.gru.hidden_size, shape[2]))


def conv_geometry(index: int) -> tuple[int, int, int]:
    """(kernel, stride, padding) of conv layer ``index`` under the depth rule."""
    return REFERENCE_CONVS[index] if index < len(REFERENCE_CONVS) else EXTRA_CONV


def audio_modules(spec: AudioSpec, depth: int) -> list[nn.Module]:
    """The ``depth`` modules of the audio encoder, in order."""
    convs = depth - 1 if depth >= 2 else 1
    modules: list[nn.Module] = []
    for i in range(convs):
        modules.append(ConvModule(1 if i == 0 else spec.channels, spec.channels, *conv_geometry(i)))
    if depth >= 2:
        modules.append(GRUModule(spec.channels, spec.hidden))
    return modules


def audio_lengths(spec: AudioSpec, depth: int) -> list[int]:
    """Sequence length after each module for a training crop (4095, 1023, 512, 257, 128, 128 at paper)."""
    length, lengths = spec.crop_samples, []
    convs = depth - 1 if depth >= 2 else 1
    for i in range(convs):
        kernel, stride, padding = conv_geometry(i)
        length = (length + 2 * padding - kernel) // stride + 1
        lengths.append(length)
    return lengths + ([length] if depth >= 2 else [])


def too_short(preset: str, depth: int) -> str | None:
    """Why ``depth`` cannot train under audio InfoNCE: a sequence shorter than the prediction steps."""
    steps = PRESETS[preset]["audio"].prediction_steps
    if min(audio_lengths(PRESETS[preset]["audio"], depth)) <= steps:
        return f"sequences become shorter than {steps} prediction steps"
    return None


def audio_input(preset: str) -> tuple[int, ...]:
    """One training crop of the preset: (1, samples)."""
    return (1, PRESETS[preset]["audio"].crop_samples)


@register_network("cpc-audio", modality="audio", reference_depth=6, max_depth=MAX_DEPTH, depth_problem=too_short,
                  input_shape=audio_input)
def cpc_audio(preset: str, depth: int) -> Layers:
    """The paper's audio encoder: strided convs, then a GRU."""
    spec = PRESETS[preset]["audio"]
    names = [f"conv{i + 1}" for i in range(depth)]
    if depth >= 2:
        names[-1] = "gru"
    return Layers(audio_modules(spec, depth), names, audio_input(preset),
                  autoregressive=(depth - 1,) if depth >= 2 else ())
