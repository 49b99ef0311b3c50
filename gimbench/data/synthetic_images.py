"""The embedded procedural image generator (see ``gimbench.data.synthetic`` for what it produces)."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gimbench.data.corpus import IMAGE_SIZE, ImageSet, check_positive, check_seed, seeded_rng, split_code

_IMAGE_SPLITS = {"train": 1, "test": 2, "unlabeled": 3}
# Purpose tags keep the random streams of different uses independent for the same seed.
_TAG_CLASS, _TAG_INSTANCE, _TAG_COLOUR = 201, 202, 203

# ------------------------------------------------------------------------------------------------- images

_FAMILY_NAMES = ("grating", "rings", "crosses", "checkers", "blobs")
_FAMILY_NAMES += ("triangles", "stripes", "squares", "spokes", "dots")
_ORIENTED = {"grating", "stripes"}  # families whose class also fixes the orientation


@dataclass(frozen=True)
class _Style:
    """One class: a shape family and its knobs in [0, 1], which the renderers map to their own ranges."""

    family: str
    angle: float
    a: float
    b: float


def _draw_style(seed: int, cls: int) -> _Style:
    rng = seeded_rng(seed, _TAG_CLASS, cls)
    return _Style(_FAMILY_NAMES[cls % len(_FAMILY_NAMES)], rng.uniform(0, np.pi), rng.random(), rng.random())


Array = np.ndarray
# A renderer maps (style, rng, n, u, v, scale) to (n, H, W) coverage; u, v are rotated pixel coordinates.
_Renderer = Callable[[_Style, np.random.Generator, int, Array, Array, Array], Array]
_Shape = Callable[[_Style, Array, Array, Array], Array]


def _grid() -> tuple[Array, Array]:
    coords = np.arange(IMAGE_SIZE, dtype=np.float32)
    return coords[None, :, None], coords[None, None, :]  # y (1, H, 1), x (1, 1, W)


def _frame(rng: np.random.Generator, n: int, angle: Array, spread: float = 14.0) -> tuple[Array, Array]:
    """Rotated coordinates (u, v) around a random centre, each (n, H, W)."""
    y, x = _grid()
    cy, cx = (IMAGE_SIZE - 1) / 2 + rng.uniform(-spread, spread, size=(2, n, 1, 1)).astype(np.float32)
    angle = np.asarray(angle, dtype=np.float32)[:, None, None]
    cos, sin = np.cos(angle), np.sin(angle)
    return cos * (x - cx) + sin * (y - cy), cos * (y - cy) - sin * (x - cx)


def _disk(u: Array, v: Array, radius: Array) -> Array:
    return np.clip(radius - np.sqrt(u * u + v * v) + 0.5, 0.0, 1.0)


def _lines(u: Array, period: Array, width: float) -> Array:
    """Anti-aliased parallel lines of ``width`` pixels across u, every ``period`` pixels."""
    distance = np.abs((u / period + 0.5) % 1.0 - 0.5) * period
    return np.clip(width / 2 - distance + 0.5, 0.0, 1.0)


def _render(style: _Style, rng: np.random.Generator, n: int) -> Array:
    """Foreground coverage in [0, 1], (n, H, W), for ``n`` instances of one class."""
    scale = rng.uniform(0.75, 1.25, (n, 1, 1)).astype(np.float32)
    # Oriented families keep their class angle up to a small jitter; the others are rotation-invariant.
    oriented = style.family in _ORIENTED
    angle = style.angle + rng.normal(0.0, 0.12, n) if oriented else rng.uniform(0, 2 * np.pi, n)
    u, v = _frame(rng, n, angle)
    return _RENDERERS[style.family](style, rng, n, u, v, scale).astype(np.float32)


def _grating(style: _Style, rng: np.random.Generator, n: int, u: Array, v: Array, s: Array) -> Array:
    period = (4.0 + 4.0 * style.a) * s
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    return (0.5 + 0.5 * np.sin(2 * np.pi * u / period + phase)) * _disk(u, v, 30.0 * s)


def _rings(style: _Style, rng: np.random.Generator, n: int, u: Array, v: Array, s: Array) -> Array:
    period = (7.0 + 5.0 * style.a) * s
    return _lines(np.sqrt(u * u + v * v), period, 2.5) * _disk(u, v, 32.0 * s)


def _checkers(style: _Style, rng: np.random.Generator, n: int, u: Array, v: Array, s: Array) -> Array:
    period = (8.0 + 6.0 * style.a) * s
    cells = np.clip(3.0 * np.sin(np.pi * u / period) * np.sin(np.pi * v / period), -1.0, 1.0)
    square = np.clip(28.0 * s - np.maximum(np.abs(u), np.abs(v)) + 0.5, 0.0, 1.0)
    return (0.5 + 0.5 * cells) * square


def _stripes(style: _Style, rng: np.random.Generator, n: int, u: Array, v: Array, s: Array) -> Array:
    return _lines(u, (10.0 + 8.0 * style.a) * s, 1.5 + style.b)


def _spokes(style: _Style, rng: np.random.Generator, n: int, u: Array, v: Array, s: Array) -> Array:
    count = 5 + round(6 * style.a)
    wedges = np.clip(4.0 * np.cos(count * np.arctan2(v, u)), -1.0, 1.0)
    return (0.5 + 0.5 * wedges) * _disk(u, v, 30.0 * s)


def _dots(style: _Style, rng: np.random.Generator, n: int, u: Array, v: Array, s: Array) -> Array:
    period = (9.0 + 5.0 * style.a) * s
    du = (u / period - np.round(u / period)) * period
    dv = (v / period - np.round(v / period)) * period
    return np.clip(0.3 * period - np.sqrt(du * du + dv * dv) + 0.5, 0.0, 1.0) * _disk(u, v, 32.0 * s)


def _scattered(shape: _Shape) -> _Renderer:
    """Turns a single-shape drawer into a family of 2-5 independently placed and rotated copies."""

    def render(style: _Style, rng: np.random.Generator, n: int, u: Array, v: Array, s: Array) -> Array:
        count = 2 + round(3 * style.a)
        # The class-level frame (u, v) is ignored: each copy gets its own position and rotation.
        cu, cv = _frame(rng, n * count, rng.uniform(0, 2 * np.pi, n * count), spread=30.0)
        size = np.repeat(s, count, axis=0) * rng.uniform(0.8, 1.2, (n * count, 1, 1)).astype(np.float32)
        return shape(style, cu, cv, size).reshape(n, count, IMAGE_SIZE, IMAGE_SIZE).max(axis=1)

    return render


def _cross(style: _Style, u: Array, v: Array, size: Array) -> Array:
    arm, half = (7.0 + 5.0 * style.b) * size, 1.4
    bar_u = np.minimum(arm - np.abs(u), half - np.abs(v))
    bar_v = np.minimum(arm - np.abs(v), half - np.abs(u))
    return np.clip(np.maximum(bar_u, bar_v) + 0.5, 0.0, 1.0)


def _blob(style: _Style, u: Array, v: Array, size: Array) -> Array:
    sigma = (3.5 + 4.0 * style.b) * size
    return np.exp(-0.5 * (u * u + v * v) / (sigma * sigma))


def _triangle(style: _Style, u: Array, v: Array, size: Array) -> Array:
    inradius = (5.0 + 4.0 * style.b) * size
    normals = np.pi / 2 + 2 * np.pi / 3 * np.arange(3)
    farthest = np.maximum.reduce([np.cos(t) * u + np.sin(t) * v for t in normals])
    return np.clip(inradius - farthest + 0.5, 0.0, 1.0)


def _square(style: _Style, u: Array, v: Array, size: Array) -> Array:
    half = (7.0 + 5.0 * style.b) * size
    return np.clip(1.2 - np.abs(np.maximum(np.abs(u), np.abs(v)) - half) + 0.5, 0.0, 1.0)


_RENDERERS: dict[str, _Renderer] = {
    "grating": _grating,
    "rings": _rings,
    "crosses": _scattered(_cross),
    "checkers": _checkers,
    "blobs": _scattered(_blob),
    "triangles": _scattered(_triangle),
    "stripes": _stripes,
    "squares": _scattered(_square),
    "spokes": _spokes,
    "dots": _dots,
}


def _photograph(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turns coverage maps into uint8 images with random level, contrast, polarity, light and noise."""
    n = len(coverage)

    def per_image(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, (n, 1, 1)).astype(np.float32)

    # Random polarity and contrast keep mean brightness and global contrast from naming the class.
    contrast = per_image(0.15, 0.45) * rng.choice(np.float32([-1.0, 1.0]), (n, 1, 1))
    y, x = _grid()
    direction = per_image(0, 2 * np.pi)
    light = per_image(0.0, 0.15) * ((np.cos(direction) * x + np.sin(direction) * y) / IMAGE_SIZE - 0.5)
    # Smooth clutter: random weights on a 6 x 6 grid of broad Gaussian bumps.
    centres = np.linspace(0, IMAGE_SIZE - 1, 6, dtype=np.float32)
    bumps = np.exp(-0.5 * ((np.arange(IMAGE_SIZE, dtype=np.float32)[:, None] - centres) / 12.0) ** 2)
    weights = rng.standard_normal((n, 6, 6), dtype=np.float32) * per_image(0.0, 0.06)
    clutter = bumps @ weights @ bumps.T
    grain = rng.standard_normal(coverage.shape, dtype=np.float32) * per_image(0.01, 0.05)
    image = per_image(0.25, 0.75) + contrast * coverage + light + clutter + grain
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _colourise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, H, W) grayscale to (N, H, W, 3) RGB: every image gets its own gain and offset per channel, a random tint
    that names no class (as colour rarely does in the grayscale set's shape classes), so a colour network must
    still read shapes."""
    n = len(images)
    gain = rng.uniform(0.6, 1.4, (n, 1, 1, 3)).astype(np.float32)
    offset = rng.uniform(-0.15, 0.15, (n, 1, 1, 3)).astype(np.float32)
    rgb = images[..., None].astype(np.float32) / 255 * gain + offset
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def make_image_set(
    *, seed: int, split: str, num_classes: int = 10, per_class: int = 50, unlabeled: int = 500, colour: bool = False
) -> ImageSet:
    """Generates procedural grayscale (or, ``colour``, RGB) images of ``num_classes`` shape/texture classes.

    Class definitions depend on ``seed`` only, instances on ``(seed, split)``. The RGB set is the grayscale one
    tinted per image from a stream of its own, so the grayscale images are the same with or without it.

    Args:
        seed: Non-negative integer seed.
        split: "train" or "test" (``per_class`` labelled images per class, class by class), or
            "unlabeled" (``unlabeled`` images mixing all classes, labels -1).
        num_classes: Number of classes.
        per_class: Images per class in the labelled splits.
        unlabeled: Size of the unlabeled split.
        colour: RGB images (N, 96, 96, 3) instead of grayscale (N, 96, 96).

    Returns:
        An ``ImageSet``.

    Raises:
        ValueError: On an unknown split, a negative seed or a non-positive count.
    """
    check_seed(seed)
    code = split_code(split, _IMAGE_SPLITS)
    check_positive(num_classes=num_classes, per_class=per_class, unlabeled=unlabeled)
    if split == "unlabeled":
        classes = seeded_rng(seed, _TAG_INSTANCE, code).integers(num_classes, size=unlabeled)
    else:
        classes = np.repeat(np.arange(num_classes), per_class)
    images = np.empty((len(classes), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for cls in np.unique(classes):
        rng = seeded_rng(seed, _TAG_INSTANCE, code, cls + 1)
        where = np.flatnonzero(classes == cls)
        images[where] = _photograph(_render(_draw_style(seed, int(cls)), rng, len(where)), rng)
    labels = torch.from_numpy(np.where(split == "unlabeled", -1, classes).astype(np.int64))
    if colour:
        images = _colourise(images, seeded_rng(seed, _TAG_COLOUR, code))
    return ImageSet(torch.from_numpy(images), labels, num_classes)
