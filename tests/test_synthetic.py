"""Tests of the embedded synthetic datasets: contracts, determinism, and that the labels are learnable."""

import math

import pytest
import torch

from gimbench.data.synthetic import (
    FRAME_SAMPLES,
    IMAGE_MEAN,
    SAMPLE_RATE,
    AudioCorpus,
    ImageSet,
    make_audio_corpus,
    make_image_set,
)


@pytest.fixture(scope="module")
def audio_train() -> AudioCorpus:
    return make_audio_corpus(seed=0, split="train")


@pytest.fixture(scope="module")
def audio_test() -> AudioCorpus:
    return make_audio_corpus(seed=0, split="test")


@pytest.fixture(scope="module")
def images_train() -> ImageSet:
    return make_image_set(seed=0, split="train")


@pytest.fixture(scope="module")
def images_test() -> ImageSet:
    return make_image_set(seed=0, split="test")


def _assert_corpora_equal(a: AudioCorpus, b: AudioCorpus) -> None:
    assert torch.equal(a.speakers, b.speakers)
    assert all(torch.equal(x, y) for x, y in zip(a.waves, b.waves, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a.phones, b.phones, strict=True))


# ------------------------------------------------------------------------------------------------- audio


def test_audio_is_deterministic() -> None:
    def small() -> AudioCorpus:
        return make_audio_corpus(seed=5, split="test", num_speakers=3, utterances_per_speaker=2, seconds=1.0)

    _assert_corpora_equal(small(), small())


def test_audio_splits_share_speakers_not_utterances(audio_train: AudioCorpus, audio_test: AudioCorpus) -> None:
    assert audio_test.num_speakers == audio_train.num_speakers
    assert torch.equal(audio_test.speakers, audio_train.speakers)
    assert not any(torch.equal(x, y) for x, y in zip(audio_train.waves, audio_test.waves, strict=True))


def test_audio_depends_on_seed() -> None:
    a = make_audio_corpus(seed=1, split="train", num_speakers=2, utterances_per_speaker=2, seconds=0.5)
    b = make_audio_corpus(seed=2, split="train", num_speakers=2, utterances_per_speaker=2, seconds=0.5)
    assert not torch.equal(a.waves[0], b.waves[0])


def test_audio_shapes_dtypes_and_ranges(audio_train: AudioCorpus) -> None:
    corpus = audio_train
    assert len(corpus.waves) == len(corpus.phones) == len(corpus.speakers) == 20 * 8
    assert corpus.speakers.dtype == torch.int64
    for wave, phones in zip(corpus.waves, corpus.phones, strict=True):
        assert wave.dtype == torch.float32 and wave.ndim == 1
        assert len(wave) == 2 * SAMPLE_RATE and len(wave) % FRAME_SAMPLES == 0
        assert torch.isfinite(wave).all() and wave.abs().max() <= 1.0
        assert wave.abs().max() > 0.1  # not silent
        assert phones.dtype == torch.int64 and len(phones) == len(wave) // FRAME_SAMPLES
        assert phones.min() >= 0 and phones.max() < corpus.num_phones
    assert 16 <= corpus.num_phones <= 24


def test_odd_duration_rounds_to_whole_frames() -> None:
    corpus = make_audio_corpus(seed=0, split="test", num_speakers=1, utterances_per_speaker=1, seconds=0.3333)
    assert len(corpus.waves[0]) == 33 * FRAME_SAMPLES and len(corpus.phones[0]) == 33


def test_every_speaker_and_phone_present(audio_train: AudioCorpus) -> None:
    assert torch.equal(torch.bincount(audio_train.speakers), torch.full((20,), 8))
    counts = torch.bincount(torch.cat(audio_train.phones), minlength=audio_train.num_phones)
    assert (counts > 50).all(), counts
    # Silence (label 0) separates words inside every utterance, not only at its ends.
    for phones in audio_train.phones:
        inner = phones[5:-5]
        assert (inner == 0).any() and (inner != 0).any()


def test_silence_is_quieter_than_speech(audio_train: AudioCorpus) -> None:
    frames = torch.stack(audio_train.waves).view(len(audio_train.waves), -1, FRAME_SAMPLES)
    energy = frames.square().mean(-1)
    phones = torch.stack(audio_train.phones)
    assert energy[phones == 0].mean() < 0.1 * energy[phones != 0].mean()


def _frame_index(corpus: AudioCorpus) -> dict[bytes, tuple[int, int]]:
    """Maps the bytes of every frame-aligned 160-sample window to (utterance, start sample)."""
    return {
        frame.numpy().tobytes(): (utt, i * FRAME_SAMPLES)
        for utt, wave in enumerate(corpus.waves)
        for i, frame in enumerate(wave.view(-1, FRAME_SAMPLES))
    }


def test_random_crops_are_frame_aligned_slices(audio_train: AudioCorpus) -> None:
    crop = 20480
    x, speakers = audio_train.random_crops(16, crop, torch.Generator().manual_seed(3))
    assert x.shape == (16, 1, crop) and x.dtype == torch.float32 and speakers.dtype == torch.int64
    index = _frame_index(audio_train)
    for sample, speaker in zip(x[:, 0], speakers, strict=True):
        # A crop starting off the 160-sample grid would not begin with any indexed window.
        utt, start = index[sample[:FRAME_SAMPLES].numpy().tobytes()]
        assert torch.equal(audio_train.waves[utt][start : start + crop], sample)
        assert audio_train.speakers[utt] == speaker


def test_random_crops_cover_utterances_and_offsets(audio_train: AudioCorpus) -> None:
    x, _ = audio_train.random_crops(256, 1600, torch.Generator().manual_seed(0))
    index = _frame_index(audio_train)
    found = [index[s[:FRAME_SAMPLES].numpy().tobytes()] for s in x[:, 0]]
    utterances, starts = {u for u, _ in found}, {s for _, s in found}
    assert len(utterances) > 100
    assert len(starts) > 80 and max(starts) > 170 * FRAME_SAMPLES


def test_random_crops_are_deterministic(audio_train: AudioCorpus) -> None:
    a = audio_train.random_crops(8, 1600, torch.Generator().manual_seed(7))
    b = audio_train.random_crops(8, 1600, torch.Generator().manual_seed(7))
    c = audio_train.random_crops(8, 1600, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_random_crops_reject_bad_lengths() -> None:
    corpus = AudioCorpus(
        waves=[torch.zeros(1600), torch.zeros(3200)],
        speakers=torch.tensor([0, 1]),
        phones=[torch.zeros(10, dtype=torch.int64), torch.zeros(20, dtype=torch.int64)],
        num_speakers=2,
        num_phones=21,
    )
    gen = torch.Generator().manual_seed(0)
    assert corpus.random_crops(4, 1600, gen)[0].shape == (4, 1, 1600)
    for crop in (1760, 1000, 0):
        with pytest.raises(ValueError, match="crop_samples"):
            corpus.random_crops(4, crop, gen)
    with pytest.raises(ValueError, match="batch_size"):
        corpus.random_crops(0, 160, gen)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"split": "valid"}, "split"),
        ({"num_speakers": 0}, "num_speakers"),
        ({"utterances_per_speaker": -1}, "utterances_per_speaker"),
        ({"seconds": 0.0}, "seconds"),
        ({"seconds": 0.001}, "seconds"),
        ({"seed": -1}, "seed"),
    ],
)
def test_make_audio_corpus_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    args = {"seed": 0, "split": "train", **kwargs}
    with pytest.raises(ValueError, match=name):
        make_audio_corpus(**args)


def _log_spectra(corpus: AudioCorpus) -> torch.Tensor:
    """Per-utterance average log-magnitude spectrum, (N, 257)."""
    window = torch.hann_window(400)
    spectra = torch.stft(torch.stack(corpus.waves), 512, 160, 400, window, return_complex=True)
    return spectra.abs().add(1e-4).log().mean(-1)


def _linear_probe_accuracy(train: tuple, test: tuple, classes: int, steps: int = 300) -> float:
    """Accuracy of a full-batch logistic regression, zero-initialised so the result is deterministic."""
    (x_train, y_train), (x_test, y_test) = train, test
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    weight = torch.zeros(x_train.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=1e-2, weight_decay=1e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of tiny steps: threads only add stalls on a busy machine
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(x_train @ weight + bias, y_train).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        return ((x_test @ weight + bias).argmax(1) == y_test).float().mean().item()


def _nearest_class_mean_accuracy(train: tuple, test: tuple, classes: int) -> float:
    (x_train, y_train), (x_test, y_test) = train, test
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    centres = torch.stack([x_train[y_train == k].mean(0) for k in range(classes)])
    return (torch.cdist(x_test, centres).argmin(1) == y_test).float().mean().item()


def test_speakers_are_learnable_but_not_given_by_level(audio_train: AudioCorpus, audio_test: AudioCorpus) -> None:
    # Measured at seed 0: spectra 0.56, level 0.09; seeds 1-3: 0.38-0.45 and 0.05-0.06. Chance is 0.05.
    chance = 1 / audio_train.num_speakers
    spectra = [(_log_spectra(c), c.speakers) for c in (audio_train, audio_test)]
    assert _linear_probe_accuracy(*spectra, audio_train.num_speakers) > 5 * chance

    def level(c: AudioCorpus) -> torch.Tensor:
        return torch.stack(c.waves).square().mean(1, keepdim=True).log()

    levels = [(level(c), c.speakers) for c in (audio_train, audio_test)]
    assert _nearest_class_mean_accuracy(*levels, audio_train.num_speakers) < 3 * chance


# ------------------------------------------------------------------------------------------------ images


def test_images_are_deterministic_per_split(images_train: ImageSet, images_test: ImageSet) -> None:
    again = make_image_set(seed=0, split="train")
    assert torch.equal(images_train.images, again.images) and torch.equal(images_train.labels, again.labels)
    assert not torch.equal(images_train.images, images_test.images)
    assert torch.equal(images_train.labels, images_test.labels)
    other_seed = make_image_set(seed=1, split="train", num_classes=2, per_class=3)
    assert not torch.equal(other_seed.images, images_train.images[:6])


def test_image_shapes_dtypes_and_labels(images_train: ImageSet) -> None:
    assert images_train.images.shape == (500, 96, 96) and images_train.images.dtype == torch.uint8
    assert images_train.labels.dtype == torch.int64 and images_train.num_classes == 10
    assert torch.equal(torch.bincount(images_train.labels), torch.full((10,), 50))
    assert images_train.images.float().std() > 20  # images are not blank


def test_unlabeled_split_has_no_labels_and_mixes_classes() -> None:
    unlabeled = make_image_set(seed=0, split="unlabeled", unlabeled=120)
    assert unlabeled.images.shape == (120, 96, 96)
    assert (unlabeled.labels == -1).all() and unlabeled.labels.dtype == torch.int64
    assert unlabeled.num_classes == 10


def test_more_classes_than_shape_families() -> None:
    images = make_image_set(seed=0, split="train", num_classes=13, per_class=2)
    assert images.images.shape == (26, 96, 96) and int(images.labels.max()) == 12


def test_center_crops_normalise_to_stl10_statistics() -> None:
    level = round(IMAGE_MEAN * 255)
    constant = ImageSet(torch.full((3, 96, 96), level, dtype=torch.uint8), torch.tensor([0, 1, 2]), 3)
    x, labels = constant.center_crops()
    assert x.shape == (3, 1, 64, 64) and x.dtype == torch.float32
    assert x.abs().max() < 0.01
    assert torch.equal(labels, torch.tensor([0, 1, 2]))
    white = ImageSet(torch.full((1, 96, 96), 255, dtype=torch.uint8), torch.tensor([0]), 1)
    assert torch.allclose(white.center_crops(32)[0], torch.tensor((1 - 0.4120) / 0.2570))


def test_center_crops_take_the_centre() -> None:
    rows = torch.arange(96, dtype=torch.uint8)[:, None].expand(96, 96)
    x, _ = ImageSet(rows[None].clone(), torch.tensor([0]), 1).center_crops(64)
    expected = (torch.arange(16, 80).float() / 255 - 0.4120) / 0.2570
    assert torch.allclose(x[0, 0, :, 0], expected)


def test_random_crops_flip_and_stay_inside() -> None:
    cols = torch.arange(96, dtype=torch.uint8)[None, :].expand(96, 96)
    images = ImageSet(torch.stack([cols, cols.T]), torch.tensor([0, 1]), 2)
    x, labels = images.random_crops(64, torch.Generator().manual_seed(0), crop=48)
    assert x.shape == (64, 1, 48, 48) and x.dtype == torch.float32
    values = (x[:, 0] * 0.2570 + 0.4120) * 255
    flipped = 0
    for crop, label in zip(values.round().long(), labels, strict=True):
        line = crop[0] if label == 0 else crop[:, 0]  # the axis that varies in this image
        steps = line.diff()
        if label == 1:
            assert (steps == 1).all()  # rows are never flipped
        else:
            assert (steps == 1).all() or (steps == -1).all()
            flipped += int((steps == -1).all())
        assert line.min() >= 0 and line.max() <= 95
    assert 5 < flipped < (labels == 0).sum() - 5


def test_image_random_crops_are_deterministic(images_train: ImageSet) -> None:
    a = images_train.random_crops(8, torch.Generator().manual_seed(1))
    b = images_train.random_crops(8, torch.Generator().manual_seed(1))
    assert a[0].shape == (8, 1, 64, 64)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_image_crops_reject_bad_sizes(images_train: ImageSet) -> None:
    gen = torch.Generator().manual_seed(0)
    for crop in (0, 97):
        with pytest.raises(ValueError, match="crop"):
            images_train.random_crops(4, gen, crop=crop)
        with pytest.raises(ValueError, match="crop"):
            images_train.center_crops(crop)
    with pytest.raises(ValueError, match="batch_size"):
        images_train.random_crops(0, gen)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"split": "validation"}, "split"),
        ({"num_classes": 0}, "num_classes"),
        ({"per_class": 0}, "per_class"),
        ({"split": "unlabeled", "unlabeled": -5}, "unlabeled"),
        ({"seed": -3}, "seed"),
    ],
)
def test_make_image_set_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    args = {"seed": 0, "split": "train", **kwargs}
    with pytest.raises(ValueError, match=name):
        make_image_set(**args)


def _orientation_histograms(images: ImageSet, bins: int = 8) -> torch.Tensor:
    """Gradient-magnitude-weighted histogram of gradient orientations, normalised per image."""
    x = images.images.float() / 255
    gy = x[:, 2:, 1:-1] - x[:, :-2, 1:-1]
    gx = x[:, 1:-1, 2:] - x[:, 1:-1, :-2]
    angle = torch.atan2(gy, gx) % math.pi
    index = (angle / math.pi * bins).long().clamp(max=bins - 1).flatten(1)
    hist = torch.zeros(len(x), bins).scatter_add_(1, index, (gx * gx + gy * gy).sqrt().flatten(1))
    return hist / hist.sum(1, keepdim=True)


def test_classes_are_learnable_but_not_given_by_brightness(images_train: ImageSet, images_test: ImageSet) -> None:
    # Measured at seed 0: orientation histograms 0.45, mean brightness 0.09; seeds 1-3: 0.33-0.45 and
    # 0.07-0.10. Chance is 0.10.
    sets = (images_train, images_test)
    hog = [(_orientation_histograms(s), s.labels) for s in sets]
    assert _nearest_class_mean_accuracy(*hog, 10) > 0.25
    brightness = [(s.images.float().mean((1, 2))[:, None], s.labels) for s in sets]
    assert _nearest_class_mean_accuracy(*brightness, 10) < 0.16


def test_rgb_images_are_the_grayscale_ones_tinted(images_test: ImageSet) -> None:
    rgb = make_image_set(seed=0, split="test", colour=True)
    assert rgb.images.shape == (*images_test.images.shape, 3) and torch.equal(rgb.labels, images_test.labels)
    gray, red, green = (x.flatten().float() for x in (images_test.images[0], rgb.images[0, ..., 0],
                                                     rgb.images[0, ..., 1]))
    assert torch.corrcoef(torch.stack([gray, red]))[0, 1] > 0.95  # each channel a gain and offset of the gray
    assert not torch.equal(red, green)  # ... its own
    x, _ = rgb.random_crops(2, torch.Generator().manual_seed(0), crop=64)
    assert x.shape == (2, 3, 64, 64) and x.is_contiguous()
