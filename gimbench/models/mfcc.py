"""The MFCC feature baseline as a one-module "encoder" with no parameters.

13 coefficients from 40 mel bands of 25 ms windows at a 10 ms hop (one frame per phone label),
with first and second deltas: 39 features per frame, the usual speech front end.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from gimbench.models.audio import audio_input
from gimbench.models.networks import Layers, register_network

SAMPLE_RATE = 16000
HOP = 160


class MFCCFeatures(nn.Module):
    """(B, 1, T) audio to (B, 39, frames) MFCCs with deltas."""

    def __init__(self) -> None:
        super().__init__()
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=SAMPLE_RATE, n_mfcc=13, melkwargs={"n_fft": 400, "hop_length": HOP, "n_mels": 40}
        )
        self.deltas = torchaudio.transforms.ComputeDeltas()
        # As a conv would be described: a centred 400-sample window every 160 samples (frame i is
        # centred on sample 160 i), so probes align its frames like any module's rows.
        self.geometry = (400, HOP, 200)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.mfcc(x.squeeze(1))
        d = self.deltas(c)
        return torch.cat([c, d, self.deltas(d)], dim=1)


@register_network("mfcc", modality="audio", reference_depth=1, input_shape=audio_input)
def mfcc(preset: str, depth: int) -> Layers:
    """MFCC features: a fixed front end without parameters (--model mfcc)."""
    return Layers([MFCCFeatures()], ["mfcc"], audio_input(preset))
