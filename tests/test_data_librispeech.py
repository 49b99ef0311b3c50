"""LibriSpeech with the CPC split and phone files: crops, probes, every bad-data case, and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from data_fixtures import flac_path, kaldi_frames, write_librispeech

from gimbench.cli import main
from gimbench.data.check import check_dataset
from gimbench.data.librispeech import LibriSpeech
from gimbench.data.librispeech_index import phone_alignment
from gimbench.data.loading import BatchStream
from gimbench.data.problems import DataError

CROP = 5120  # the tiny preset's


def test_crops_start_on_the_frame_grid_and_carry_their_speaker(tmp_path):
    write_librispeech(tmp_path)
    source = LibriSpeech(tmp_path, CROP)
    assert source.num_classes == 3 and len(source.pool) == 9
    x, y = source.batch(12, torch.Generator().manual_seed(0))
    assert x.shape == (12, 1, CROP) and x.dtype == torch.float32 and y.dtype == torch.long
    waves = {u.id: sf.read(str(u.path), dtype="float32")[0] for u in source.pool}
    for crop, speaker in zip(x[:, 0].numpy(), y.tolist(), strict=True):
        matches = [(uid, s) for uid, wave in waves.items() for s in range(0, len(wave) - CROP + 1, 160)
                   if np.array_equal(wave[s:s + CROP], crop)]
        assert len(matches) == 1, "a crop is not a 160-aligned window of exactly one utterance"
        assert speaker == int(matches[0][0].split("-")[0]) - 100  # speakers 100, 101, 102 -> labels 0, 1, 2


def test_probes_read_the_splits_with_aligned_phone_labels(tmp_path):
    splits = write_librispeech(tmp_path)
    speaker, phone = LibriSpeech(tmp_path, CROP).probe_tasks()
    assert (speaker.kind, speaker.num_classes, phone.kind, phone.num_classes) == ("pooled", 3, "frames", 41)
    assert len(speaker.train_inputs) == len(splits["train"]) and len(speaker.test_inputs) == len(splits["test"])
    assert all(x.shape == (1, CROP) for x in speaker.train_inputs)
    assert sorted(int(v) for v in speaker.test_labels) == [0, 1, 2]
    for x, labels in zip(phone.train_inputs + phone.test_inputs, phone.train_labels + phone.test_labels, strict=True):
        assert x.shape[1] == 160 * len(labels) and labels.min() >= 0 and labels.max() < 41


def test_phone_frames_are_centred_on_the_alignment_windows():
    samples = 16000
    assert phone_alignment(samples, kaldi_frames(samples)) == (120, kaldi_frames(samples))  # centres 160 f + 200
    assert phone_alignment(samples, samples // 160) == (0, 100)  # labels for every 10 ms: no room to shift
    assert phone_alignment(samples, 101) == (0, 100)  # one label too many is dropped


def break_tree(root, splits):
    """Every per-utterance problem at once; returns reason -> the id or path it concerns."""
    train = splits["train"]
    flac_path(root, train[0]).write_bytes(b"not a flac file" * 10)  # unreadable header
    wave, _ = sf.read(str(flac_path(root, train[1])), dtype="float32")
    sf.write(flac_path(root, train[1]), wave, 8000, subtype="PCM_16")  # wrong sample rate
    labels = root / "LibriSpeech100_labels_split"
    phones = labels.joinpath("converted_aligned_phones.txt").read_text().splitlines()
    kept = [line for line in phones if not line.startswith(train[2])]  # train[2] loses its phone labels
    kept = [f"{train[3]} 1 2 3" if line.startswith(train[3]) else line for line in kept]  # far too few labels
    labels.joinpath("converted_aligned_phones.txt").write_text("\n".join([*kept, "lonely-id"]) + "\n")
    labels.joinpath("train_split.txt").write_text("\n".join([*train, "999-1-0000"]) + "\n")  # no such file
    return {"unreadable_audio": train[0], "wrong_sample_rate": train[1], "no_phone_labels": train[2],
            "phone_length_mismatch": train[3], "missing_audio": "999-1-0000", "bad_phone_line": "lonely-id"}


def test_each_bad_utterance_is_skipped_counted_and_shown(tmp_path, capsys):
    broken = break_tree(tmp_path / "data", write_librispeech(tmp_path / "data", utterances=5))
    report = check_dataset("librispeech", tmp_path / "data")
    for reason, what in broken.items():
        assert report.skips.counts[reason] == 1 and what in report.skips.examples[reason][0]
    assert main(["data", "check", "--data", "librispeech", "--data-root", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert all(reason in out for reason in broken) and "13 usable utterances" not in out
    assert "10 usable utterances, 3 speakers" in out and "8 with phone labels, 2 without" in out
    code = main(["run", "--data", "librispeech", "--data-root", str(tmp_path / "data"), "--preset", "tiny",
                 "--device", "cpu", "--depth", "2", "--steps", "3", "--warmup-steps", "1", "--profile-steps", "1",
                 "--memory-steps", "0", "--quiet", "--out", str(tmp_path), "--name", "run"])
    assert code == 0
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    skipped = doc["data"]["skipped"]
    for reason in ("unreadable_audio", "wrong_sample_rate", "missing_audio", "bad_phone_line"):
        assert skipped[reason]["count"] == 1 and broken[reason] in skipped[reason]["examples"][0]
    assert doc["data"]["train_examples"] == 10 and doc["data"]["speakers"] == 3
    assert set(doc["probe"]) == {"speaker", "phone"} and len(doc["probe"]["phone"]["per_module"]) == 2
    assert doc["step"]["data_wait_ms"]["median"] > 0 and 0 < doc["step"]["data_wait_ms"]["share"] < 1


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:2000])  # the header still opens; decoding fails


def test_audio_that_fails_to_decode_in_a_worker_is_redrawn_and_counted_once(tmp_path):
    splits = write_librispeech(tmp_path, speakers=1, utterances=4)
    truncated, short = (flac_path(tmp_path, uid) for uid in splits["train"][:2])
    truncate(truncated)
    sf.write(short, np.zeros(1600, dtype=np.float32), 16000, subtype="PCM_16")  # shorter than a crop
    source = LibriSpeech(tmp_path, CROP)
    with BatchStream(source, batch_size=8, seed=0, workers=1) as batches:
        for _ in range(3):
            x, y = next(batches)
            assert x.shape == (8, 1, CROP) and bool(x.abs().sum(dim=2).gt(0).all())
    assert dict(source.skips.counts) == {"unreadable_audio": 1, "too_short": 1}  # not again from the worker
    assert source.skips.examples["unreadable_audio"] == [str(truncated)]


def test_no_decodable_training_audio_is_one_clear_error_from_a_worker(tmp_path):
    splits = write_librispeech(tmp_path, speakers=1, utterances=3)
    for uid in splits["train"]:
        truncate(flac_path(tmp_path, uid))
    with pytest.raises(DataError, match="none of the 2 training utterances") as error, \
            BatchStream(LibriSpeech(tmp_path, CROP), batch_size=2, seed=0, workers=1) as batches:
        next(batches)
    assert "Traceback" not in str(error.value)


def test_a_split_with_nothing_usable_is_an_error(tmp_path):
    splits = write_librispeech(tmp_path)
    for uid in splits["test"]:
        flac_path(tmp_path, uid).unlink()
    with pytest.raises(DataError, match="test_split.txt: no usable utterance"):
        LibriSpeech(tmp_path, CROP)


def test_missing_or_misplaced_dataset_names_the_layout(tmp_path, capsys):
    write_librispeech(tmp_path)
    assert main(["data", "check", "--data", "librispeech", "--data-root", str(tmp_path / "LibriSpeech")]) == 2
    out, err = capsys.readouterr()
    assert "must be the folder that holds LibriSpeech/" in err and err.count("\n") == 1 and "openslr.org/12" in out
    assert "train_split.txt" in err and "Traceback" not in err
    assert main(["run", "--data", "librispeech", "--modality", "vision", "--data-root", str(tmp_path)]) == 2
    assert "use --modality audio" in capsys.readouterr().err


def test_same_seed_and_workers_give_the_same_batches(tmp_path):
    write_librispeech(tmp_path, speakers=2, utterances=3)
    source = LibriSpeech(tmp_path, CROP)

    def first(workers: int, seed: int = 0) -> torch.Tensor:
        with BatchStream(source, batch_size=4, seed=seed, workers=workers) as batches:
            return torch.cat([next(batches)[0] for _ in range(3)])

    plain = first(0)
    assert torch.equal(plain, torch.cat([source.batch(4, g)[0] for g in [torch.Generator().manual_seed(0)] * 3]))
    assert torch.equal(first(2), first(2)) and not torch.equal(first(2), first(2, seed=1))
