"""The embedded speech-like corpus generator (see ``gimbench.data.synthetic`` for what it produces)."""

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gimbench.data.corpus import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioCorpus,
    check_positive,
    check_seed,
    seeded_rng,
    split_code,
)

_AUDIO_SPLITS = {"train": 1, "test": 2}
# Purpose tags keep the random streams of different uses independent for the same seed.
_TAG_VOICE, _TAG_UTTERANCE, _TAG_SETUP = 101, 102, 103
_HOP = FRAME_SAMPLES  # one synthesis frame per label frame; the 20 ms window cross-fades neighbours
_WIN = 2 * FRAME_SAMPLES
_NFFT = _WIN
_CHUNK = 40  # utterances synthesised per STFT batch, to bound memory

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
    # The speaker's recording setup, kept for all their utterances as a LibriSpeech reader keeps one
    # microphone and room: a per-utterance setup made trained features encode the utterance's channel
    # rather than the voice, which no probe on unseen utterances can use (see gimbench.data.synthetic).
    channel_db: np.ndarray  # (bins,) channel EQ
    snr_db: float
    noise_slope: float  # background noise colour, dB per octave


def _draw_voice(seed: int, speaker: int) -> _Voice:
    rng = seeded_rng(seed, _TAG_VOICE, speaker)
    setup = seeded_rng(seed, _TAG_SETUP, speaker)
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
        channel_db=_channel_db(setup),
        snr_db=setup.uniform(15.0, 35.0),
        noise_slope=setup.uniform(-6.0, 0.0),
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
    rng = seeded_rng(seed, _TAG_UTTERANCE, split, speaker, index)
    rate = rng.uniform(0.8, 1.25)  # duration multiplier: the speaking rate of this utterance
    labels, seg_pos, seg_len, stress = _frame_arrays(_phone_sequence(rng, frames, rate), frames)
    return _Plan(
        labels=labels,
        seg_pos=seg_pos,
        seg_len=seg_len,
        stress=stress,
        log_f0=_pitch_contour(rng, voice, frames),
        peak=rng.uniform(0.5, 0.9),
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
    channel = 10 ** (_t(np.stack([v.channel_db for v in voices])) / 20)[:, :, None]
    mixed = channel * (spectra[: len(plans)] * glottal_env + spectra[len(plans) :] * noise_env)
    speech = torch.istft(mixed, _NFFT, _HOP, _WIN, window, length=padded)
    speech = speech[:, FRAME_SAMPLES // 2 : FRAME_SAMPLES // 2 + samples]
    snr = _t(np.array([v.snr_db for v in voices]))[:, None]
    level = speech.square().mean(1, keepdim=True).sqrt() * 10 ** (-snr / 20)
    noisy = speech + _coloured(noise[:, 1, :samples], [v.noise_slope for v in voices]) * level
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
    check_seed(seed)
    code = split_code(split, _AUDIO_SPLITS)
    check_positive(num_speakers=num_speakers, utterances_per_speaker=utterances_per_speaker, seconds=seconds)
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
