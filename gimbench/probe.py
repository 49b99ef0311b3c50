"""Linear probes on frozen features: how much label information each module's output carries.

Protocol (after the reference): the encoder is frozen; for every module k its output is turned into
feature rows and one ``nn.Linear`` is trained on them with Adam and cross-entropy.

* ``pooled`` tasks (speaker, image class): one row per input — audio averaged over time, vision over
  the 49 patches and their spatial positions.
* ``frames`` tasks (phone): one row per 10 ms label frame — the module's output rows are averaged over
  each frame (``align_frames``), so every module is probed at the labels' resolution.

Features are standardised with the training rows' statistics. Frame probes stop early on a fixed-seed
tenth of the training rows; pooled probes, with far fewer rows, train a fixed number of epochs (see
``SETTINGS``). Everything random comes from local generators, so a probe's accuracy is a deterministic
function of the features and the seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gimbench.data.corpus import FRAME_SAMPLES
from gimbench.data.tasks import ProbeTask  # the data's side of a probe; gimbench.probe.ProbeTask stays its name
from gimbench.losses import pool
from gimbench.models.group import Group

KINDS = ("pooled", "frames")

# Adam learning rate per task. Speaker and class follow the reference (1e-3). The reference's 1e-4
# for phones is meant for ~10^6-10^7 LibriSpeech frames; our corpus has ~3*10^4 frames, and within the
# epoch cap 1e-3 reached higher phone accuracy (measured on a random tiny encoder: 0.29 vs 0.24 on
# module 0), so phones use 1e-3 as well; early stopping on held-out frames guards against overfitting.
LEARNING_RATES = {"speaker": 1e-3, "phone": 1e-3, "class": 1e-3}
DEFAULT_LR = 1e-3  # for task names added later
# Probe training per task kind. A frames task has ~10^4 rows: a tenth held out is a reliable early
# stopping signal. A pooled task has ~10^2 rows (160 utterances, 20 speakers): a tenth is 16 rows,
# fewer than one per class, and stopping on it picked noise (measured on a random tiny encoder,
# 3 seeds x 6 modules: mean speaker accuracy 0.078 with seed-to-seed swings up to 0.1, against 0.138
# and swings <= 0.025 for a fixed 200 epochs on all rows). So pooled probes train a fixed number of
# epochs on every training row, in batches that make an epoch ~10 Adam steps on the embedded corpora
# (640 training utterances, 500 training images). Batches of 16 on 640 utterances cost 35 s of probing in
# the default run; batches of 64 cost 23 s and moved last-module speaker accuracy by -2 (GIM) and -6
# points (random init).
SETTINGS = {
    "pooled": {"batch_size": 64, "holdout": 0.0, "max_epochs": 200},
    "frames": {"batch_size": 256, "holdout": 0.1, "max_epochs": 100, "patience": 10},
}


@dataclass
class ProbeResult:
    """A task's probe accuracies on every module.

    Attributes:
        per_module: Test accuracy of the probe on module k's features, k = 0..depth-1.
        chance: Test accuracy of always predicting the most frequent training label.
        train_examples: Rows the probes were trained on (frames count individually for "frames").
        test_examples: Rows they were tested on.
        epochs: The most epochs any module's probe ran before early stopping.
    """

    per_module: list[float]
    chance: float
    train_examples: int
    test_examples: int
    epochs: int


# ------------------------------------------------------------------------------------------ features


def frame_geometry(network: nn.Module) -> list[tuple[float, float]]:
    """(hop, offset) in samples of every module's output rows: row i is centred on ``offset + hop * i``.

    Positions are continuous sample coordinates (input sample n spans [n, n + 1), so input row i is
    centred on i + 0.5). A conv (kernel, stride, padding), whose output row i reads input rows
    ``stride * i - padding .. stride * i - padding + kernel - 1``, is centred on input row
    ``stride * i - padding + (kernel - 1) / 2``; composing gives the centres below. Modules without a
    ``geometry`` attribute (the GRU) keep the length and the position of every row. For the reference
    convs this yields hops 5, 20, 40, 80, 160 with offsets 3, 10.5, 0.5, -19.5, 20.5 samples.

    Args:
        network: A ``Network`` whose ``encoder`` lists the modules.

    Returns:
        One (hop, offset) pair per module (of its top layer, where a module holds several).
    """
    hop, offset, geometry = 1.0, 0.5, []
    for module in network.encoder:
        for layer in module if isinstance(module, Group) else (module,):  # ``--modules``: a module of layers
            if getattr(layer, "geometry", None) is not None:
                kernel, stride, padding = layer.geometry
                offset += hop * ((kernel - 1) / 2 - padding)
                hop *= stride
        geometry.append((hop, offset))
    return geometry


def align_frames(
    features: torch.Tensor, frames: int, hop: float | None = None, offset: float | None = None
) -> torch.Tensor:
    """Averages one utterance's module output over each 10 ms label frame.

    Row i of the output is centred on sample ``offset + hop * i`` (see ``frame_geometry``) and is
    counted to the frame containing that centre, ``floor(centre / 160)``; the rows of a frame are
    averaged (32 rows per frame at hop 5, 1 at hop 160). A row whose centre lies in the padding before
    the first or after the last frame is counted to that edge frame, so no row is dropped.

    How the length L relates to ``frames`` F (T = 160 F samples) for the reference convs: L = 32F - 1,
    8F - 1, 4F, 2F + 1, F, and F again after the GRU. The padding makes L differ from the ideal
    ``F * 160 / hop`` by one row, and the offsets (3, 10.5, 0.5, -19.5, 20.5 samples) say which end the
    extra or missing row belongs to: after conv1 and conv2 the last frame is one row short, after conv4
    the first row is centred 19.5 samples before the utterance starts (its receptive field straddles the
    start), so frame f gets rows 2f + 1 and 2f + 2. The reference aligns from the end (it keeps the last
    ``rows per frame * F`` rows); that is what the centres give for conv4, while for conv1 and conv2 it
    would shift every frame by one row (a fraction of a frame). We use the centres, which are right for
    every module because the receptive field of a row is symmetric about its centre: a row is labelled
    with the frame its input is centred in. The GRU is causal, so its row t summarises inputs up to row
    t; it is labelled like its input row, as is usual for CPC contexts.

    Args:
        features: ``(C, L)`` output of one utterance (or ``(B, C, L)`` for utterances of equal length).
        frames: Number of label frames F.
        hop: Samples between output rows; by default ``160 / round(L / F)``.
        offset: Centre of row 0 in samples; by default ``hop / 2`` (rows tiling the input from sample 0).
            ``extract_features`` always passes the network's exact geometry.

    Returns:
        ``(F, C)`` (or ``(B, F, C)``) frame features in the dtype of ``features``.

    Raises:
        ValueError: If a frame would get no row (a hop longer than a frame, or a mismatched geometry).
    """
    length = features.shape[-1]
    if hop is None:
        per_frame = round(length / frames)
        if per_frame < 1:
            raise ValueError(f"{length} rows cannot cover {frames} frames")
        hop = FRAME_SAMPLES / per_frame
    if offset is None:
        offset = hop / 2
    centres = offset + hop * torch.arange(length, dtype=torch.float64)
    index = torch.div(centres, FRAME_SAMPLES, rounding_mode="floor").long().clamp(0, frames - 1)
    counts = torch.bincount(index, minlength=frames)
    if bool((counts == 0).any()):
        raise ValueError(f"frames without rows: {length} rows at hop {hop}, offset {offset} for {frames} frames")
    rows = features.transpose(-1, -2)
    sums = rows.new_zeros((*rows.shape[:-2], frames, rows.shape[-1]))
    sums.index_add_(sums.dim() - 2, index.to(rows.device), rows)
    return sums / counts.to(device=rows.device, dtype=rows.dtype).unsqueeze(-1)


@contextmanager
def _frozen(network: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for the duration; restores every submodule's own training flag."""
    modes = {module: module.training for module in network.modules()}
    network.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes.items():
            module.train(training)


def _batches(inputs: list[torch.Tensor], batch_size: int) -> Iterator[list[int]]:
    """Indices of inputs grouped by shape (only equal shapes stack), at most ``batch_size`` at a time."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        groups.setdefault(tuple(x.shape), []).append(i)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start : start + batch_size]


def extract_features(
    network: nn.Module, inputs: list[torch.Tensor], kind: str, device: torch.device | str, batch_size: int = 16
) -> list[torch.Tensor]:
    """Frozen features of every module for a list of inputs.

    Each batch runs through the encoder once, keeping every module's output, so probing all modules
    costs one forward pass. The network stays on whatever device it is; inputs are moved to ``device``.

    Args:
        network: A ``Network``; ``network.encoder[k]`` maps module k-1's output to module k's.
        inputs: Unbatched inputs, ``(1, T)`` audio (T a multiple of 160 for "frames") or ``(1, 64, 64)``.
        kind: "pooled": each input's module output averaged over time (audio) or over patches and space
            (vision), one row per input; "frames": each input's output aligned to its T // 160 label
            frames with ``align_frames``, rows concatenated in input order (audio only).
        device: Where the encoder runs.
        batch_size: Inputs per forward pass; only inputs of equal shape are batched together.

    Returns:
        Per module k, a ``(rows, C_k)`` float32 CPU tensor.

    Raises:
        ValueError: On an unknown ``kind``, or "frames" for an output that is not a (B, C, L) sequence.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    geometry = frame_geometry(network)
    rows: list[list[torch.Tensor | None]] = [[None] * len(inputs) for _ in network.encoder]
    with _frozen(network):
        for indices in _batches(inputs, batch_size):
            x = torch.stack([inputs[i] for i in indices]).to(device)
            for k, module in enumerate(network.encoder):
                x = module(x)
                if kind == "pooled":
                    out = pool(x, len(x) // len(indices), getattr(network, "tokens", False)).unsqueeze(1)
                elif x.dim() == 3:
                    out = align_frames(x, inputs[indices[0]].shape[-1] // FRAME_SAMPLES, *geometry[k])
                else:
                    raise ValueError(f"'frames' needs (B, C, L) module outputs, module {k} gave {tuple(x.shape)}")
                for i, r in zip(indices, out.float().cpu(), strict=True):
                    rows[k][i] = r
    return [torch.cat(module_rows) for module_rows in rows]


# ------------------------------------------------------------------------------------------- probes


def _split(n: int, holdout: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, held-out) row indices; nothing is held out when there are too few rows or ``holdout`` is 0."""
    order = torch.randperm(n, generator=generator)
    held = min(round(holdout * n), n - 1) if n >= 2 else 0
    return order[held:], order[:held]


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on rows ``x``."""
    with torch.no_grad():
        logits = model(x)
        return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()


def _linear(features: int, classes: int, seed: int) -> nn.Linear:
    """A linear layer initialised from ``seed`` without consuming or changing the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(features, classes)


def train_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    *,
    lr: float,
    seed: int,
    max_epochs: int = 100,
    patience: int = 10,
    batch_size: int = 256,
    holdout: float = 0.1,
) -> tuple[float, int]:
    """Trains a linear probe and tests it.

    One ``nn.Linear`` on features standardised with the training rows' mean and std, trained with Adam
    and cross-entropy. A fixed-seed ``holdout`` fraction of the training rows is held out: after each
    epoch the probe is scored on it (accuracy, ties broken by lower loss, which keeps a small held-out set
    informative once its accuracy saturates); training stops after ``patience`` epochs without
    improvement and the best weights are kept. With nothing held out it runs ``max_epochs``.

    Args:
        train_x: ``(N, C)`` float training rows.
        train_y: ``(N,)`` int64 labels.
        test_x: ``(M, C)`` float test rows.
        test_y: ``(M,)`` int64 labels.
        num_classes: Output size of the probe.
        lr: Adam learning rate.
        seed: Seeds the split, the shuffling and the initialisation (local generators only).
        max_epochs: Epoch cap.
        patience: Epochs without held-out improvement before stopping.
        batch_size: Rows per Adam step.
        holdout: Fraction of training rows held out for early stopping.

    Returns:
        (test accuracy, epochs run).
    """
    generator = torch.Generator().manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant features (dead ReLUs) stay 0
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    fit, held = _split(len(train_x), holdout, generator)
    model = _linear(train_x.shape[1], num_classes, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state, since, epoch = None, None, 0, 0
    for epoch in range(1, max_epochs + 1):  # noqa: B007 (epoch is read after the loop)
        for batch in fit[torch.randperm(len(fit), generator=generator)].split(batch_size):
            optimizer.zero_grad()
            F.cross_entropy(model(train_x[batch]), train_y[batch]).backward()
            optimizer.step()
        if len(held) == 0:
            continue
        accuracy, loss = _accuracy(model, train_x[held], train_y[held])
        if best is None or (accuracy, -loss) > best:
            best, best_state, since = (accuracy, -loss), {n: p.clone() for n, p in model.state_dict().items()}, 0
        else:
            since += 1
            if since >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return _accuracy(model, test_x, test_y)[0], epoch


def _label_rows(labels: list[torch.Tensor], kind: str) -> torch.Tensor:
    """Labels as one int64 vector, row for row with ``extract_features``."""
    return torch.stack(labels).long() if kind == "pooled" else torch.cat(labels).long()


def _chance(train_y: torch.Tensor, test_y: torch.Tensor, num_classes: int) -> float:
    """Test accuracy of always answering the most frequent training label."""
    majority = torch.bincount(train_y, minlength=num_classes).argmax()
    return (test_y == majority).float().mean().item()


def _probe_task(
    network: nn.Module,
    task: ProbeTask,
    device: torch.device | str,
    seed: int,
    on_module: Callable[[str, int], None] | None,
) -> ProbeResult:
    """All modules' probes for one task."""
    train_x = extract_features(network, task.train_inputs, task.kind, device)
    test_x = extract_features(network, task.test_inputs, task.kind, device)
    train_y, test_y = _label_rows(task.train_labels, task.kind), _label_rows(task.test_labels, task.kind)
    if len(train_y) != len(train_x[0]) or len(test_y) != len(test_x[0]):
        raise ValueError(f"task {task.name!r}: label rows do not match feature rows (T // 160 frames per input?)")
    accuracies, epochs = [], []
    for k in range(len(train_x)):
        if on_module is not None:
            on_module(task.name, k)
        accuracy, ran = train_probe(
            train_x[k],
            train_y,
            test_x[k],
            test_y,
            task.num_classes,
            lr=LEARNING_RATES.get(task.name, DEFAULT_LR),
            seed=seed,
            **SETTINGS[task.kind],
        )
        accuracies.append(accuracy)
        epochs.append(ran)
    return ProbeResult(accuracies, _chance(train_y, test_y, task.num_classes), len(train_y), len(test_y), max(epochs))


def probe(
    network: nn.Module,
    tasks: list[ProbeTask],
    device: torch.device | str,
    *,
    seed: int = 0,
    on_module: Callable[[str, int], None] | None = None,
) -> dict[str, ProbeResult]:
    """Every task on every module of a frozen network.

    Args:
        network: A ``Network``; its parameters are never changed and its training mode is restored.
        tasks: The probe tasks.
        device: Where the encoder runs (probes train on the CPU features).
        seed: Seeds every probe (the same seed on every module, so modules differ only in features).
        on_module: Called as ``on_module(task_name, k)`` before module k's probe, for progress display.

    Returns:
        Task name -> its ``ProbeResult``.
    """
    return {task.name: _probe_task(network, task, device, seed, on_module) for task in tasks}
