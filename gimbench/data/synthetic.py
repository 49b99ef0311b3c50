"""Embedded default datasets: seeded speech-like audio and procedural images, generated in process.

Nothing is read from disk or the network, so every run (CI included) trains and probes on the same data.
Both generators are deterministic functions of their arguments: random draws come from
``numpy.random.default_rng`` seeded with (seed, purpose tag, split, index) and never from a global RNG.

Audio (``make_audio_corpus``)
    16 kHz mono "utterances" built by a source-filter synthesiser working in the STFT domain (one 20 ms
    Hann frame per 10 ms label frame, centred on it), labelled per 10 ms frame with one of 21 phones
    (0 = silence):

    * 10 vowels: a Rosenberg glottal pulse train at the utterance's pitch, shaped by a cascade of four
      formant resonances (Peterson-Barney patterns times the speaker's formant scaling) and a spectral tilt.
    * 3 nasals: the same voiced source through a low murmur resonance plus a phone-specific anti-resonance.
    * 4 fricatives (s, sh, f, h): band-limited noise at a phone-specific band, or aspiration noise through
      the formants for h.
    * 3 plosives (p, t, k): a closure, a 10 ms noise burst at a phone-specific band, then fading aspiration.

    An utterance is a sequence of words (1-3 consonant-vowel syllables, 40-200 ms per phone) separated by
    short silences. Formant tracks are smoothed across phone boundaries (glides of ~30 ms) and the
    overlapping synthesis windows cross-fade neighbouring frames, while labels stay exactly on the
    10 ms grid.

    Speakers (which depend on ``seed`` only) differ in mean pitch and pitch range, vocal-tract length
    (formant scale) with a per-formant quirk, formant bandwidths, open quotient, spectral tilt,
    breathiness, vibrato and jitter. A prototype in which speakers differed only in pitch and formant
    scale let a *random* conv stack reach 60-70% speaker accuracy, which hides what training buys. So each
    utterance also gets nuisance variation that must be averaged out: a pitch offset and intonation
    contour, a speaking rate, per-syllable stress, a random gentle channel EQ (tilt, ripples, band
    limits), additive noise of random colour (white to -6 dB/octave) at 10-30 dB SNR and a random peak
    level. Global loudness and channel
    colour therefore say nothing about the speaker; the time-consistent voice (formant pattern, pitch
    range, voice quality) does.

Images (``make_image_set``)
    96x96 grayscale uint8 images of procedural classes. Class ``c`` uses shape family ``c % 10``
    (oriented sine grating, concentric rings, crosses, checkerboard, Gaussian blobs, triangles, thin
    stripes, hollow squares, spokes, dot lattice) with family knobs (period, count, size, and for the
    oriented families the angle) drawn from ``seed`` only. Instances (``seed`` and ``split``) vary in
    position, scale, rotation, contrast, polarity (dark-on-light or light-on-dark), background level,
    illumination gradient, smooth clutter and pixel noise, so that the class lives in local shape and
    texture rather than in mean brightness.
"""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
FRAME_SAMPLES = 160  # one label frame = 10 ms
IMAGE_SIZE = 96
IMAGE_MEAN = 0.4120  # STL-10 grayscale statistics, shared by real and synthetic images
IMAGE_STD = 0.2570

_AUDIO_SPLITS = {"train": 1, "test": 2}
_IMAGE_SPLITS = {"train": 1, "test": 2, "unlabeled": 3}
# Purpose tags keep the random streams of different uses independent for the same seed.
_TAG_VOICE, _TAG_UTTERANCE, _TAG_CLASS, _TAG_INSTANCE = 101, 102, 201, 202

_HOP = FRAME_SAMPLES  # one synthesis frame per label frame; the 20 ms window cross-fades neighbours
_WIN = 2 * FRAME_SAMPLES
_NFFT = _WIN
_CHUNK = 40  # utterances synthesised per STFT batch, to bound memory


# --------------------------------------------------------------------------------------------- containers


@dataclass(frozen=True)
class AudioCorpus:
    """Utterances with a speaker per utterance and a phone per 10 ms frame.

    Attributes:
        waves: Float32 waveforms ``(T,)`` at 16 kHz, ``T`` a multiple of 160, within [-1, 1].
        speakers: Int64 ``(N,)`` speaker index per utterance, in ``[0, num_speakers)``.
        phones: Int64 ``(T // 160,)`` phone label per frame, in ``[0, num_phones)``; 0 is silence.
        num_speakers: Number of speakers.
        num_phones: Size of the phone inventory.
    """

    waves: list[torch.Tensor]
    speakers: torch.Tensor
    phones: list[torch.Tensor]
    num_speakers: int
    num_phones: int

    def random_crops(
        self, batch_size: int, crop_samples: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws a batch of frame-aligned crops.

        Args:
            batch_size: Number of crops ``B``.
            crop_samples: Crop length, a multiple of 160 no longer than the shortest utterance.
            generator: Source of randomness; the result depends only on its state.

        Returns:
            ``x`` float32 ``(B, 1, crop_samples)`` and the speaker of each crop, int64 ``(B,)``.

        Raises:
            ValueError: If ``batch_size`` is not positive or ``crop_samples`` does not fit.
        """
        _check_positive(batch_size=batch_size, crop_samples=crop_samples)
        lengths = torch.tensor([len(w) for w in self.waves])
        if crop_samples % FRAME_SAMPLES or crop_samples > int(lengths.min()):
            raise ValueError(
                f"crop_samples={crop_samples} must be a multiple of {FRAME_SAMPLES} "
                f"and at most the shortest utterance ({int(lengths.min())} samples)"
            )
        utt = torch.randint(len(self.waves), (batch_size,), generator=generator)
        # Starts must stay on the label grid so frame labels of a crop can be recovered by slicing.
        n_starts = (lengths[utt] - crop_samples) // FRAME_SAMPLES + 1
        starts = (torch.rand(batch_size, generator=generator, dtype=torch.float64) * n_starts).long()
        starts = torch.minimum(starts, n_starts - 1) * FRAME_SAMPLES
        x = torch.stack(
            [self.waves[u][s : s + crop_samples] for u, s in zip(utt.tolist(), starts.tolist(), strict=True)]
        )
        return x.unsqueeze(1), self.speakers[utt]


@dataclass(frozen=True)
class ImageSet:
    """Grayscale images with class labels.

    Attributes:
        images: Uint8 ``(N, 96, 96)``.
        labels: Int64 ``(N,)`` class index, or -1 for unlabeled images.
        num_classes: Number of classes.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def random_crops(
        self, batch_size: int, generator: torch.Generator, crop: int = 64
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training view: random images, random ``crop`` x ``crop`` windows and random horizontal flips.

        Args:
            batch_size: Number of crops ``B``.
            generator: Source of randomness; the result depends only on its state.
            crop: Side of the square crop, at most 96.

        Returns:
            Normalised float32 ``(B, 1, crop, crop)`` and the labels ``(B,)``.

        Raises:
            ValueError: If ``batch_size`` is not positive or ``crop`` does not fit.
        """
        _check_positive(batch_size=batch_size)
        size = self._check_crop(crop)
        idx = torch.randint(len(self.images), (batch_size,), generator=generator)
        top = torch.randint(size - crop + 1, (batch_size,), generator=generator)
        left = torch.randint(size - crop + 1, (batch_size,), generator=generator)
        flip = torch.rand(batch_size, generator=generator) < 0.5
        steps = torch.arange(crop)
        rows = top[:, None] + steps
        cols = torch.where(flip[:, None], left[:, None] + crop - 1 - steps, left[:, None] + steps)
        patches = self.images[idx[:, None, None], rows[:, :, None], cols[:, None, :]]
        return _normalise(patches), self.labels[idx]

    def center_crops(self, crop: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation view: the centre ``crop`` x ``crop`` window of every image, normalised.

        Args:
            crop: Side of the square crop, at most 96.

        Returns:
            Normalised float32 ``(N, 1, crop, crop)`` and the labels ``(N,)``.

        Raises:
            ValueError: If ``crop`` does not fit.
        """
        size = self._check_crop(crop)
        start = (size - crop) // 2
        return _normalise(self.images[:, start : start + crop, start : start + crop]), self.labels

    def _check_crop(self, crop: int) -> int:
        size = int(self.images.shape[-1])
        if not 0 < crop <= size:
            raise ValueError(f"crop={crop} must be in [1, {size}]")
        return size


def _normalise(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() / 255.0 - IMAGE_MEAN) / IMAGE_STD).unsqueeze(1)


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def _check_seed(seed: int) -> None:
    # SeedSequence needs non-negative integers; a bool or float seed is almost certainly a mistake.
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _split_code(split: str, table: dict[str, int]) -> int:
    if split not in table:
        raise ValueError(f"split must be one of {sorted(table)}, got {split!r}")
    return table[split]


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in keys])


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Runs torch single-threaded for the duration.

    Reductions then sum in the same order whatever the caller's thread count, so the data are
    bit-identical across machines; and the many mid-sized ops of generation no longer stall when
    another process keeps the cores busy (measured: 8 s instead of 1 s for the default corpus).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------------------- phones

# name, kind, (F1, F2, F3) Hz, voicing, band-noise level, noise band (centre, width) Hz, aspiration, zero Hz.
# Consonant formants are loci (labial / alveolar / velar) so that neighbouring vowels glide towards them.
_PHONE_TABLE = (
    ("sil", "sil", (500, 1500, 2500), 0.0, 0.0, (3000, 2000), 0.0, 0),
    ("iy", "vowel", (270, 2290, 3010), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("ih", "vowel", (390, 1990, 2550), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("eh", "vowel", (530, 1840, 2480), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("ae", "vowel", (660, 1720, 2410), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("aa", "vowel", (730, 1090, 2440), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("ao", "vowel", (570, 840, 2410), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("uh", "vowel", (440, 1020, 2240), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("uw", "vowel", (300, 870, 2240), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("er", "vowel", (490, 1350, 1690), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("ah", "vowel", (520, 1190, 2390), 1.0, 0.0, (3000, 2000), 0.0, 0),
    ("m", "nasal", (250, 1100, 2300), 0.5, 0.0, (3000, 2000), 0.0, 900),
    ("n", "nasal", (250, 1700, 2600), 0.5, 0.0, (3000, 2000), 0.0, 1800),
    ("ng", "nasal", (250, 2200, 2800), 0.5, 0.0, (3000, 2000), 0.0, 2800),
    ("s", "fric", (350, 1700, 2600), 0.0, 2.0, (5600, 1200), 0.0, 0),
    ("sh", "fric", (350, 2100, 2700), 0.0, 2.5, (3000, 700), 0.0, 0),
    ("f", "fric", (350, 900, 2300), 0.0, 0.6, (4500, 3000), 0.0, 0),
    ("h", "fric", (500, 1500, 2500), 0.0, 0.0, (3000, 2000), 0.25, 0),
    ("p", "stop", (350, 900, 2300), 0.0, 15.0, (900, 500), 0.0, 0),
    ("t", "stop", (350, 1700, 2600), 0.0, 15.0, (4200, 1500), 0.0, 0),
    ("k", "stop", (350, 2200, 2700), 0.0, 15.0, (2200, 500), 0.0, 0),
)
PHONE_NAMES = tuple(row[0] for row in _PHONE_TABLE)
_KIND = np.array([row[1] for row in _PHONE_TABLE])
_FORMANTS = np.array([row[2] for row in _PHONE_TABLE], dtype=np.float64)
_VOICE = np.array([row[3] for row in _PHONE_TABLE])
_NOISE = np.array([row[4] for row in _PHONE_TABLE])
_BAND = np.array([row[5] for row in _PHONE_TABLE], dtype=np.float64)
_ASPIRATION = np.array([row[6] for row in _PHONE_TABLE])
_ZERO = np.array([row[7] for row in _PHONE_TABLE], dtype=np.float64)
_VOWELS = np.flatnonzero(_KIND == "vowel")
_CONSONANTS = np.flatnonzero((_KIND != "vowel") & (_KIND != "sil"))
_STOPS = _KIND == "stop"
_F4 = 3500.0  # fixed fourth formant keeps energy above F3 and carries the vocal-tract length too


@dataclass(frozen=True)
class _Voice:
    """One speaker's time-invariant voice parameters."""

    f0: float  # mean pitch, Hz
    pitch_range: float  # std of the log-f0 intonation contour
    formant_scale: np.ndarray  # (4,) multipliers of F1..F4: vocal-tract length times a per-formant quirk
    bandwidth_scale: float
    open_quotient: float
    tilt: float  # spectral roll-off added to the source, dB per octave above 500 Hz
    breath: float  # aspiration mixed into voiced phones
    vibrato_rate: float
    vibrato_depth: float
    jitter: float


def _draw_voice(seed: int, speaker: int) -> _Voice:
    rng = _rng(seed, _TAG_VOICE, speaker)
    length = rng.uniform(0.82, 1.22)
    return _Voice(
        f0=float(np.exp(rng.uniform(np.log(85.0), np.log(255.0)))),
        pitch_range=rng.uniform(0.04, 0.14),
        formant_scale=length * np.exp(rng.normal(0.0, 0.06, size=4)),
        bandwidth_scale=rng.uniform(0.7, 1.6),
        open_quotient=rng.uniform(0.4, 0.8),
        tilt=rng.uniform(-2.0, 2.0),
        breath=rng.uniform(0.0, 0.12),
        vibrato_rate=rng.uniform(4.0, 7.0),
        vibrato_depth=rng.uniform(0.0, 0.015),
        jitter=rng.uniform(0.002, 0.012),
    )


# ------------------------------------------------------------------------------------------- utterance plan


@dataclass(frozen=True)
class _Plan:
    """Per-utterance random choices; frame arrays are on the 10 ms label grid."""

    labels: np.ndarray  # (F,) phone per frame
    seg_pos: np.ndarray  # (F,) frame index inside its phone segment
    seg_len: np.ndarray  # (F,) length of that segment in frames
    stress: np.ndarray  # (F,) per-syllable level
    log_f0: np.ndarray  # (F + 1,) pitch contour at frame edges
    channel_db: np.ndarray  # (bins,) channel EQ
    snr_db: float
    noise_slope: float  # background noise colour, dB per octave
    peak: float
    noise_seed: int


def _phone_sequence(rng: np.random.Generator, frames: int, rate: float) -> list[tuple[int, int, float]]:
    """Returns (phone, frames, stress) segments: words of CV(C) syllables between short silences."""
    segments = [(0, int(rng.integers(3, 15)), 1.0)]
    total = segments[0][1]
    while total < frames:
        for _ in range(int(rng.integers(1, 4))):
            stress = rng.uniform(0.5, 1.0)
            syllable = [int(rng.choice(_VOWELS))]
            if rng.random() < 0.85:
                syllable.insert(0, int(rng.choice(_CONSONANTS)))
            if rng.random() < 0.35:
                syllable.append(int(rng.choice(_CONSONANTS)))
            for phone in syllable:
                ms = rng.uniform(80, 200) if _KIND[phone] == "vowel" else rng.uniform(40, 110)
                segments.append((phone, max(4, round(ms * rate / 10)), stress))
        segments.append((0, max(3, round(rng.uniform(30, 150) * rate / 10)), 1.0))
        total = sum(seg[1] for seg in segments)
    return segments


def _frame_arrays(segments: list[tuple[int, int, float]], frames: int) -> tuple[np.ndarray, ...]:
    """Expands segments to per-frame labels, position in segment, segment length and stress."""
    phones = np.array([s[0] for s in segments])
    lengths = np.array([s[1] for s in segments])
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    labels = np.repeat(phones, lengths)[:frames]
    seg_pos = (np.arange(len(starts)) - starts)[:frames]
    seg_len = np.repeat(lengths, lengths)[:frames]
    stress = np.repeat([s[2] for s in segments], lengths)[:frames]
    return labels, seg_pos, seg_len, stress


def _pitch_contour(rng: np.random.Generator, voice: _Voice, frames: int) -> np.ndarray:
    """Log-f0 at frame edges: utterance offset, declination, smooth intonation, vibrato and jitter."""
    t = np.arange(frames + 1) / 100.0
    knots = rng.normal(0.0, voice.pitch_range, size=int(t[-1] / 0.4) + 3)
    intonation = np.interp(t, np.arange(len(knots)) * 0.4, knots)
    declination = rng.uniform(-0.2, 0.0) * (t / t[-1] - 0.5)
    vibrato = voice.vibrato_depth * np.sin(2 * np.pi * voice.vibrato_rate * t + rng.uniform(0, 2 * np.pi))
    jitter = rng.normal(0.0, voice.jitter, size=frames + 1)
    return np.log(voice.f0) + rng.normal(0.0, 0.06) + declination + intonation + vibrato + jitter


def _channel_db(rng: np.random.Generator) -> np.ndarray:
    """A gentle random EQ in dB: tilt, a few log-frequency ripples, soft high- and low-pass edges."""
    f = np.fft.rfftfreq(_NFFT, 1.0 / SAMPLE_RATE)
    octaves = np.log2(np.maximum(f, 50.0) / 1000.0)
    u = np.log(np.maximum(f, 50.0) / 50.0) / np.log(SAMPLE_RATE / 100.0)
    ripple = sum(rng.normal(0.0, 3.0 / k) * np.sin(np.pi * k * u + rng.uniform(0, 2 * np.pi)) for k in range(1, 4))
    highpass = rng.uniform(60.0, 250.0)
    lowpass = rng.uniform(3800.0, 8000.0)
    edges = 10 * np.log10((f / highpass) ** 4 / (1 + (f / highpass) ** 4) + 1e-12)
    edges -= 10 * np.log10(1 + (f / lowpass) ** 8)
    return rng.uniform(-3.0, 3.0) * octaves + ripple + edges


def _plan_utterance(seed: int, split: int, speaker: int, index: int, voice: _Voice, frames: int) -> _Plan:
    """Draws everything random about one utterance from its own stream, so it depends on nothing else."""
    rng = _rng(seed, _TAG_UTTERANCE, split, speaker, index)
    rate = rng.uniform(0.8, 1.25)  # duration multiplier: the speaking rate of this utterance
    labels, seg_pos, seg_len, stress = _frame_arrays(_phone_sequence(rng, frames, rate), frames)
    return _Plan(
        labels=labels,
        seg_pos=seg_pos,
        seg_len=seg_len,
        stress=stress,
        log_f0=_pitch_contour(rng, voice, frames),
        channel_db=_channel_db(rng),
        snr_db=rng.uniform(10.0, 30.0),
        noise_slope=rng.uniform(-6.0, 0.0),
        peak=rng.uniform(0.2, 0.95),
        noise_seed=int(rng.integers(2**63)),
    )


# --------------------------------------------------------------------------------------------- synthesis


def _edge_frames(values: np.ndarray) -> np.ndarray:
    """Pads (B, F, ...) label-frame values by one edge frame per side: synthesis frame j is label j - 1."""
    return np.concatenate([values[:, :1], values, values[:, -1:]], axis=1)


def _smooth3(track: np.ndarray) -> np.ndarray:
    """A [1/4, 1/2, 1/4] average along the frame axis: with the 20 ms window, a ~30 ms formant glide."""
    padded = np.concatenate([track[:, :1], track, track[:, -1:]], axis=1)
    return 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]


def _tracks(plans: list[_Plan], voices: list[_Voice]) -> dict[str, np.ndarray]:
    """Per-synthesis-frame parameters, (B, F + 2) or (B, F + 2, k), for a batch of utterances."""
    labels = _edge_frames(np.stack([p.labels for p in plans]))
    pos = _edge_frames(np.stack([p.seg_pos for p in plans]))
    length = _edge_frames(np.stack([p.seg_len for p in plans]))
    stress = _edge_frames(np.stack([p.stress for p in plans]))
    # Stops: a silent closure, a 10 ms burst at ~60% of the segment, then fading aspiration.
    after = pos - np.minimum(np.round(0.6 * length), length - 1)
    stop = _STOPS[labels]
    noise = np.where(stop, _NOISE[labels] * (after == 0), _NOISE[labels])
    aspiration = np.where(stop, 0.5 * np.exp(-(after - 1) / 1.5) * (after >= 1), _ASPIRATION[labels])
    scale = np.stack([v.formant_scale for v in voices])[:, None, :]
    f4 = np.broadcast_to(_F4 * scale[..., 3:], labels.shape + (1,))
    voicing = _VOICE[labels] * stress
    return {
        "formants": np.concatenate([_smooth3(_FORMANTS[labels]) * scale[..., :3], f4], axis=-1),
        "voicing": voicing,
        "breath": voicing * np.array([v.breath for v in voices])[:, None],
        "aspiration": aspiration * stress,
        "noise": noise * stress,
        "band": _BAND[labels] * np.sqrt(scale[..., :1]),
        "zero": _ZERO[labels] * scale[..., 1],
    }


def _glottal_source(plans: list[_Plan], voices: list[_Voice], samples: int) -> torch.Tensor:
    """Rosenberg glottal flow derivative at a per-sample pitch, unit RMS per utterance."""
    log_f0 = torch.as_tensor(np.stack([p.log_f0 for p in plans]))
    f0 = F.interpolate(log_f0[:, None], size=samples, mode="linear", align_corners=True)[:, 0].exp()
    phase = torch.remainder(torch.cumsum(f0 / SAMPLE_RATE, dim=1), 1.0).float()
    oq = torch.tensor([v.open_quotient for v in voices])[:, None]
    rise = 0.65 * oq
    opening = 0.5 * (1 - torch.cos(torch.pi * phase / rise))
    closing = torch.cos(0.5 * torch.pi * (phase - rise) / (oq - rise))
    flow = torch.where(phase < rise, opening, torch.where(phase < oq, closing, torch.zeros_like(phase)))
    source = torch.diff(flow, dim=1, prepend=flow[:, :1])  # lip radiation differentiates the flow
    return source / source.pow(2).mean(dim=1, keepdim=True).sqrt()


def _envelopes(tracks: dict[str, np.ndarray], voices: list[_Voice]) -> tuple[torch.Tensor, torch.Tensor]:
    """Spectral envelopes (B, bins, J) applied to the glottal and to the noise source."""
    f = torch.fft.rfftfreq(_NFFT, 1.0 / SAMPLE_RATE)[:, None] / 1000.0  # kHz keeps products in float32 range
    formants = _t(tracks["formants"]).transpose(1, 2)[:, :, None] / 1000.0  # (B, 4, 1, J)
    bw = torch.tensor([0.06, 0.09, 0.15, 0.25])[None, :, None, None]
    bw = bw * torch.tensor([v.bandwidth_scale for v in voices])[:, None, None, None]
    f2 = f * f
    denominators = (formants * formants - f2).square() + f2 * bw * bw  # (B, 4, bins, J)
    resonance = (formants * formants).prod(dim=1) * denominators.prod(dim=1).rsqrt()
    zero = _t(tracks["zero"])[:, None, :] / 1000.0
    anti = ((zero * zero - f2).square() + f2 * 0.04).sqrt() / zero.clamp(min=1e-3).square()
    anti = torch.where(zero > 0, anti.clamp(max=4.0), 1.0)
    tilt_db = torch.tensor([v.tilt for v in voices])[:, None, None] * torch.log2(f.clamp(min=0.5) / 0.5)
    glottal = resonance * anti * 10 ** (-tilt_db / 20) * _t(tracks["voicing"])[:, None, :]
    band = _t(tracks["band"]).transpose(1, 2)[:, :, None, :] / 1000.0  # (B, 2, 1, J)
    noise_band = torch.exp(-0.5 * ((f - band[:, 0]) / band[:, 1]).square()) * _t(tracks["noise"])[:, None, :]
    aspirated = resonance * _t(tracks["aspiration"] + tracks["breath"])[:, None, :]
    return glottal, noise_band + aspirated


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float32)


def _synthesize(plans: list[_Plan], voices: list[_Voice], samples: int) -> torch.Tensor:
    """Filters the sources in the STFT domain, then adds channel, noise and level. Returns (B, samples)."""
    window = torch.hann_window(_WIN)
    glottal_env, noise_env = _envelopes(_tracks(plans, voices), voices)
    # Half a frame of margin on each side centres synthesis frame j + 1 on label frame j.
    padded = samples + FRAME_SAMPLES
    noise = torch.stack([_noise(p.noise_seed, 2, padded) for p in plans])  # excitation, background
    sources = torch.cat([_glottal_source(plans, voices, padded), noise[:, 0]])
    spectra = torch.stft(sources, _NFFT, _HOP, _WIN, window, return_complex=True)
    channel = 10 ** (_t(np.stack([p.channel_db for p in plans])) / 20)[:, :, None]
    mixed = channel * (spectra[: len(plans)] * glottal_env + spectra[len(plans) :] * noise_env)
    speech = torch.istft(mixed, _NFFT, _HOP, _WIN, window, length=padded)
    speech = speech[:, FRAME_SAMPLES // 2 : FRAME_SAMPLES // 2 + samples]
    snr = _t(np.array([p.snr_db for p in plans]))[:, None]
    level = speech.square().mean(1, keepdim=True).sqrt() * 10 ** (-snr / 20)
    noisy = speech + _coloured(noise[:, 1, :samples], [p.noise_slope for p in plans]) * level
    peak = _t(np.array([p.peak for p in plans]))[:, None]
    return noisy * peak / noisy.abs().amax(dim=1, keepdim=True).clamp(min=1e-8)


def _coloured(white: torch.Tensor, slopes_db: list[float]) -> torch.Tensor:
    """Shapes white noise rows to a unit-RMS spectrum falling by ``slope`` dB per octave above 100 Hz."""
    f = torch.fft.rfftfreq(white.shape[1], 1.0 / SAMPLE_RATE).clamp(min=100.0)
    gain = torch.exp(_t(np.array(slopes_db))[:, None] / 20 * math.log(10) * torch.log2(f / 100.0))
    shaped = torch.fft.irfft(torch.fft.rfft(white) * gain, n=white.shape[1])
    return shaped / shaped.square().mean(dim=1, keepdim=True).sqrt()


def _noise(seed: int, rows: int, samples: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((rows, samples), dtype=np.float32))


def make_audio_corpus(
    *, seed: int, split: str, num_speakers: int = 20, utterances_per_speaker: int = 8, seconds: float = 2.0
) -> AudioCorpus:
    """Generates a speech-like corpus with speaker and frame-level phone labels.

    The speakers (their voice parameters) depend on ``seed`` only, the utterances on ``(seed, split)``,
    so a probe trained on "train" is tested on unseen utterances of the same speakers.

    Args:
        seed: Non-negative integer seed.
        split: "train" or "test".
        num_speakers: Number of speakers.
        utterances_per_speaker: Utterances per speaker.
        seconds: Utterance duration, rounded to whole 10 ms frames.

    Returns:
        An ``AudioCorpus`` with utterances ordered speaker by speaker.

    Raises:
        ValueError: On an unknown split, a negative seed or a non-positive count or duration.
    """
    _check_seed(seed)
    code = _split_code(split, _AUDIO_SPLITS)
    _check_positive(num_speakers=num_speakers, utterances_per_speaker=utterances_per_speaker, seconds=seconds)
    frames = round(seconds * SAMPLE_RATE / FRAME_SAMPLES)
    if frames < 1:
        raise ValueError(f"seconds={seconds} is shorter than one {FRAME_SAMPLES}-sample frame")
    voices = [_draw_voice(seed, s) for s in range(num_speakers)]
    jobs = [(s, u) for s in range(num_speakers) for u in range(utterances_per_speaker)]
    plans = [_plan_utterance(seed, code, s, u, voices[s], frames) for s, u in jobs]
    speakers = torch.tensor([s for s, _ in jobs], dtype=torch.int64)
    waves: list[torch.Tensor] = []
    with _one_torch_thread():
        for start in range(0, len(jobs), _CHUNK):
            chunk = slice(start, start + _CHUNK)
            batch = _synthesize(plans[chunk], [voices[s] for s, _ in jobs[chunk]], frames * FRAME_SAMPLES)
            waves.extend(batch)
    phones = [torch.from_numpy(p.labels.astype(np.int64)) for p in plans]
    return AudioCorpus(waves, speakers, phones, num_speakers, len(_PHONE_TABLE))


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
    rng = _rng(seed, _TAG_CLASS, cls)
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


def make_image_set(
    *, seed: int, split: str, num_classes: int = 10, per_class: int = 50, unlabeled: int = 500
) -> ImageSet:
    """Generates procedural grayscale images of ``num_classes`` shape/texture classes.

    Class definitions depend on ``seed`` only, instances on ``(seed, split)``.

    Args:
        seed: Non-negative integer seed.
        split: "train" or "test" (``per_class`` labelled images per class, class by class), or
            "unlabeled" (``unlabeled`` images mixing all classes, labels -1).
        num_classes: Number of classes.
        per_class: Images per class in the labelled splits.
        unlabeled: Size of the unlabeled split.

    Returns:
        An ``ImageSet``.

    Raises:
        ValueError: On an unknown split, a negative seed or a non-positive count.
    """
    _check_seed(seed)
    code = _split_code(split, _IMAGE_SPLITS)
    _check_positive(num_classes=num_classes, per_class=per_class, unlabeled=unlabeled)
    if split == "unlabeled":
        classes = _rng(seed, _TAG_INSTANCE, code).integers(num_classes, size=unlabeled)
    else:
        classes = np.repeat(np.arange(num_classes), per_class)
    images = np.empty((len(classes), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for cls in np.unique(classes):
        rng = _rng(seed, _TAG_INSTANCE, code, cls + 1)
        where = np.flatnonzero(classes == cls)
        images[where] = _photograph(_render(_draw_style(seed, int(cls)), rng, len(where)), rng)
    labels = torch.from_numpy(np.where(split == "unlabeled", -1, classes).astype(np.int64))
    return ImageSet(torch.from_numpy(images), labels, num_classes)
