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
    breathiness, vibrato and jitter. Each speaker also keeps one recording setup for all their
    utterances, as a LibriSpeech reader keeps one microphone and room: a gentle channel EQ (tilt,
    ripples, band limits) and background noise of one colour (white to -6 dB/octave) at 15-35 dB SNR.
    Each utterance adds nuisance variation that must be averaged out: a pitch offset and intonation
    contour, a speaking rate, per-syllable stress and a peak level between 0.5 and 0.9. An earlier
    version drew the channel and noise per utterance; self-supervised training then encoded each
    utterance's channel (which tells utterances apart in InfoNCE as well as the voice does) and its
    features fell below random ones on the speaker probe of unseen utterances.

Images (``make_image_set``)
    96x96 grayscale uint8 images of procedural classes. Class ``c`` uses shape family ``c % 10``
    (oriented sine grating, concentric rings, crosses, checkerboard, Gaussian blobs, triangles, thin
    stripes, hollow squares, spokes, dot lattice) with family knobs (period, count, size, and for the
    oriented families the angle) drawn from ``seed`` only. Instances (``seed`` and ``split``) vary in
    position, scale, rotation, contrast, polarity (dark-on-light or light-on-dark), background level,
    illumination gradient, smooth clutter and pixel noise, so that the class lives in local shape and
    texture rather than in mean brightness.
"""

from gimbench.data.corpus import FRAME_SAMPLES, IMAGE_MEAN, IMAGE_SIZE, IMAGE_STD, SAMPLE_RATE, AudioCorpus, ImageSet
from gimbench.data.synthetic_audio import PHONE_NAMES, make_audio_corpus
from gimbench.data.synthetic_images import make_image_set

__all__ = [
    "FRAME_SAMPLES",
    "IMAGE_MEAN",
    "IMAGE_SIZE",
    "IMAGE_STD",
    "PHONE_NAMES",
    "SAMPLE_RATE",
    "AudioCorpus",
    "ImageSet",
    "make_audio_corpus",
    "make_image_set",
]
