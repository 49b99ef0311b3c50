"""Linear probes: they learn what the features carry, leave the encoder alone and align phones to frames."""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from gimbench.data.corpus import FRAME_SAMPLES
from gimbench.models.audio import GRUModule
from gimbench.probe import (
    ProbeTask,
    align_frames,
    extract_features,
    frame_geometry,
    probe,
    train_probe,
)
from gimbench.strategies.heads import build_network

FRAMES = 40  # a 0.4 s utterance: long enough for interior frames at every module, short enough to be fast


def audio_net(depth: int = 6) -> nn.Module:
    torch.manual_seed(0)
    return build_network(network="cpc-audio", preset="tiny", depth=depth, heads_on=[], context="none")


def rows(n: int, classes: int, informative: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced labels and features: one-hot of the label plus noise, or pure noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    noise = torch.randn(n, classes + 4, generator=g)
    if not informative:
        return noise, y
    x = 0.1 * noise  # the label margin (1) is 7 noise stds between two classes: ~100% is reachable
    x[:, :classes] += nn.functional.one_hot(y, classes).float()
    return x, y


def checksum(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for tensor in (*module.parameters(), *module.buffers()):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- probes


def test_probe_learns_labels_carried_by_the_features():
    x, y = rows(400, 5, informative=True, seed=0)
    tx, ty = rows(200, 5, informative=True, seed=1)
    accuracy, epochs = train_probe(x, y, tx, ty, 5, lr=1e-2, seed=0, max_epochs=30, batch_size=64)
    assert accuracy >= 0.98
    assert 1 <= epochs <= 30


def test_probe_stays_near_chance_without_label_information():
    x, y = rows(400, 5, informative=False, seed=0)
    tx, ty = rows(400, 5, informative=False, seed=1)
    accuracy, _ = train_probe(x, y, tx, ty, 5, lr=1e-2, seed=0, max_epochs=30, batch_size=64)
    # Chance is 0.2; the binomial std on 400 balanced test rows is 0.02, so 0.1 is a 5-sigma margin.
    assert abs(accuracy - 0.2) <= 0.1


def test_probe_is_deterministic_and_leaves_the_global_rng_alone():
    x, y = rows(300, 5, informative=False, seed=2)
    tx, ty = rows(200, 5, informative=False, seed=3)
    state = torch.get_rng_state()
    first = train_probe(x, y, tx, ty, 5, lr=1e-2, seed=7, max_epochs=20, batch_size=32)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)  # a different global state must not matter either
    assert train_probe(x, y, tx, ty, 5, lr=1e-2, seed=7, max_epochs=20, batch_size=32) == first


def small_tasks() -> list[ProbeTask]:
    g = torch.Generator().manual_seed(0)
    waves = [0.3 * torch.randn(1, 10 * FRAME_SAMPLES, generator=g) for _ in range(8)]
    speakers = [torch.tensor(i % 2) for i in range(8)]
    phones = [torch.randint(3, (10,), generator=g) for _ in range(8)]
    return [
        ProbeTask("speaker", "pooled", waves[:4], speakers[:4], waves[4:], speakers[4:], 2),
        ProbeTask("phone", "frames", waves[:4], phones[:4], waves[4:], phones[4:], 3),
    ]


def test_probing_never_changes_the_encoder_and_restores_its_modes():
    net = audio_net()
    net.train()
    net.encoder[2].eval()  # a mixed state must come back as it was, module by module
    modes = [m.training for m in net.modules()]
    before = checksum(net)
    calls = []
    results = probe(net, small_tasks(), "cpu", on_module=lambda task, k: calls.append((task, k)))
    assert checksum(net) == before
    assert [m.training for m in net.modules()] == modes
    assert all(p.grad is None and p.requires_grad for p in net.parameters())
    assert calls == [(t, k) for t in ("speaker", "phone") for k in range(6)]
    assert results["speaker"].train_examples == 4 and results["phone"].train_examples == 40
    assert results["phone"].test_examples == 40 and len(results["phone"].per_module) == 6
    assert all(0.0 <= a <= 1.0 for r in results.values() for a in r.per_module)


def test_probe_results_repeat_for_a_seed():
    net, tasks = audio_net(3), small_tasks()
    first, second = probe(net, tasks, "cpu", seed=3), probe(net, tasks, "cpu", seed=3)
    assert first == second


# ------------------------------------------------------------------------------------------ features


def test_extract_features_audio_shapes_and_input_order():
    net = audio_net()
    g = torch.Generator().manual_seed(0)
    inputs = [0.3 * torch.randn(1, frames * FRAME_SAMPLES, generator=g) for frames in (10, 20, 10)]
    pooled = extract_features(net, inputs, "pooled", "cpu", batch_size=2)
    frames = extract_features(net, inputs, "frames", "cpu", batch_size=2)
    assert [tuple(f.shape) for f in pooled] == [(3, 32)] * 6
    assert [tuple(f.shape) for f in frames] == [(40, 32)] * 6
    assert all(f.dtype == torch.float32 and f.device.type == "cpu" for f in pooled + frames)
    # Inputs of different lengths are batched apart; rows must still come back in input order.
    middle = extract_features(net, inputs[1:2], "frames", "cpu")
    assert all(torch.allclose(f[10:30], m, atol=1e-5) for f, m in zip(frames, middle, strict=True))
    alone = extract_features(net, inputs[1:2], "pooled", "cpu")
    assert all(torch.allclose(f[1:2], m, atol=1e-5) for f, m in zip(pooled, alone, strict=True))


def test_extract_features_vision_pooled_shapes():
    torch.manual_seed(0)
    net = build_network(network="gim-vision", preset="tiny", depth=3, heads_on=[], context="none")
    images = list(torch.randn(3, 1, 64, 64))
    features = extract_features(net, images, "pooled", "cpu", batch_size=2)
    assert [tuple(f.shape) for f in features] == [(3, 32), (3, 64), (3, 128)]
    with pytest.raises(ValueError, match="frames"):
        extract_features(net, images[:1], "frames", "cpu")


# ----------------------------------------------------------------------------------------- alignment


def position_encoder(depth: int = 6, gain: float = 0.01) -> nn.Module:
    """The real tiny audio stack with weights replaced: every conv is a box filter of channel 0 (a
    symmetric average over its receptive field, so a linear input comes out as the value at the row's
    centre), and the GRU passes channel 0 through as tanh(gain * x)."""
    net = audio_net(depth)
    with torch.no_grad():
        for module in net.encoder:
            for p in module.parameters():
                p.zero_()
            if isinstance(module, GRUModule):
                hidden = module.gru.hidden_size
                module.gru.bias_ih_l0[hidden : 2 * hidden] = -30.0  # update gate shut: h_t = candidate
                module.gru.weight_ih_l0[2 * hidden, 0] = gain  # candidate of unit 0 = tanh(gain * x_0)
            else:
                conv = module[0]
                conv.weight[0, 0, :] = 1.0 / conv.kernel_size[0]
    return net


def channel0(net: nn.Module, wave: torch.Tensor, gain: float = 0.01) -> list[torch.Tensor]:
    """Per module, channel 0 of the frame-aligned features, undoing the GRU's tanh."""
    features = extract_features(net, [wave.unsqueeze(0)], "frames", "cpu")
    out = [f[:, 0].double() for f in features]
    return [torch.atanh(v) / gain if isinstance(m, GRUModule) else v for v, m in zip(out, net.encoder, strict=True)]


def test_frame_geometry_of_the_reference_convs():
    hops, offsets = zip(*frame_geometry(audio_net()), strict=True)
    assert hops == (5, 20, 40, 80, 160, 160)
    assert offsets == (3, 10.5, 0.5, -19.5, 20.5, 20.5)


def test_features_that_encode_time_land_in_their_own_frame_at_every_module():
    # Input value = position in frames, so a module row's value is the time its receptive field is
    # centred on; averaged over a frame f it must lie in that frame and, with exact alignment, within half
    # a row of the frame's centre f + 0.5 (half a row is the most that averaging whole rows can be off).
    net = position_encoder()
    samples = torch.arange(FRAMES * FRAME_SAMPLES, dtype=torch.float32)
    values = channel0(net, (samples + 0.5) / FRAME_SAMPLES)
    interior = torch.arange(3, FRAMES - 3)  # zero padding bends the edges (module 5 sees ~1.5 frames each side)
    centre = interior.double() + 0.5
    for (hop, _), v in zip(frame_geometry(net), values, strict=True):
        assert len(v) == FRAMES
        assert torch.equal(v[interior].floor().long(), interior)
        assert (v[interior] - centre).abs().max() <= hop / 2 / FRAME_SAMPLES + 1e-3
        # The check has teeth: a one-frame slip fails it.
        assert not torch.equal(v.roll(1)[interior].floor().long(), interior)


def test_naive_alignment_of_conv4_fails_the_half_row_check():
    # conv4's rows are centred 19.5 samples before their nominal slots: aligning them from the start as
    # if they tiled the input (align_frames' default) puts every frame 0.37 frames early, more than the
    # 0.25 the exact alignment guarantees; the centres (what extract_features uses) fix it.
    net = position_encoder(depth=5)
    wave = (torch.arange(FRAMES * FRAME_SAMPLES, dtype=torch.float32) + 0.5) / FRAME_SAMPLES
    with torch.no_grad():
        out = net.features(wave.view(1, 1, -1), 3)[0, :1]
    assert out.shape[-1] == 2 * FRAMES + 1
    interior = torch.arange(3, FRAMES - 3)
    naive = align_frames(out, FRAMES)[interior, 0] - (interior + 0.5)
    exact = align_frames(out, FRAMES, *frame_geometry(net)[3])[interior, 0] - (interior + 0.5)
    assert naive.abs().min() > 0.25 and exact.abs().max() <= 0.25 + 1e-3


def test_phone_boundaries_stay_on_their_frames_at_every_module():
    # A synthetic utterance of known phones (value = label + 1, constant over each phone): the aligned
    # features must show each phone on its own frames and switch at the known boundaries within a frame.
    lengths, labels = (6, 9, 5, 7, 6, 7), (0, 3, 1, 4, 2, 0)
    phones = torch.cat([torch.full((n,), lab) for n, lab in zip(lengths, labels, strict=True)])
    wave = (phones + 1).float().repeat_interleave(FRAME_SAMPLES)
    boundaries = torch.tensor(lengths).cumsum(0)[:-1]
    frames = torch.arange(FRAMES)
    far = (frames[:, None] - boundaries).abs().min(1).values >= 2  # two frames from any boundary
    far &= (frames >= 2) & (frames < FRAMES - 2)
    for v in channel0(position_encoder(), wave):
        assert torch.equal(v[far].round().long() - 1, phones[far])
        for b in boundaries.tolist():
            old, new = phones[b - 1].item() + 1, phones[b].item() + 1
            switched = ((v - old).abs() > (v - new).abs())[b - 3 : b + 4]
            # Closer to the new phone from some frame on, and that frame is b - 1, b or b + 1.
            first = int(switched.float().argmax()) + b - 3
            assert bool(switched[first - b + 3 :].all()) and abs(first - b) <= 1
