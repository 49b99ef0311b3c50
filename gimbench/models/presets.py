"""Model presets: ``paper`` reproduces REFERENCE.md's sizes; ``tiny`` keeps the topology, small enough for CPU."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioSpec:
    """Sizes of the audio encoder and its InfoNCE heads."""

    channels: int = 512  # width of every conv module
    hidden: int = 256  # GRU width
    crop_samples: int = 20480  # training crop; 160 samples = one 10 ms step
    prediction_steps: int = 12
    negatives: int = 10
    window: int | None = 128  # subsampled context window; None predicts from every position
    batch_size: int = 8
    lr: float = 2e-4  # Adam's and AdamW's
    sgd_lr: float = 1e-2  # SGD with momentum 0.9 (docs/precision.md)


@dataclass(frozen=True)
class VisionSpec:
    """Sizes of the vision encoder (pre-activation ResNet-50 stages, no BatchNorm) and its heads."""

    stem: int = 64
    widths: tuple[int, ...] = (64, 128, 256)  # bottleneck planes per stage; stage output is 4x
    blocks: tuple[int, ...] = (3, 4, 6)
    extra_blocks: int = 2  # blocks in each module past the reference stages (depth > 3)
    crop: int = 64
    patch: int = 16
    patch_stride: int = 8
    prediction_steps: int = 5
    negatives: int = 16
    pixelcnn_layers: int = 4
    batch_size: int = 32
    lr: float = 2e-4  # Adam's and AdamW's
    sgd_lr: float = 1e-2  # SGD with momentum 0.9 (docs/precision.md)


PRESETS: dict[str, dict[str, AudioSpec | VisionSpec]] = {
    "paper": {"audio": AudioSpec(), "vision": VisionSpec()},
    "tiny": {
        # A narrow network learns visibly in a few hundred CPU steps only at a higher rate.
        "audio": AudioSpec(channels=32, hidden=32, crop_samples=5120, batch_size=8, lr=1e-3, sgd_lr=5e-2),
        "vision": VisionSpec(stem=8, widths=(8, 16, 32), batch_size=8, lr=1e-3, sgd_lr=5e-2),
    },
}
