"""Encoders: the network registry, the reference's parameter counts, the depth rule, shapes."""

from __future__ import annotations

import pytest
import torch
from test_layers import graph

from gimbench.losses import AudioInfoNCE, Classifier, VisionInfoNCE
from gimbench.models import MAX_DEPTH, NETWORKS, PAPER_NETWORKS
from gimbench.models.audio import audio_lengths
from gimbench.models.presets import PRESETS
from gimbench.strategies.heads import build_network


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def network(modality, preset, depth, heads, context="none"):
    return build_network(network=PAPER_NETWORKS[modality], preset=preset, depth=depth, heads_on=heads,
                         context=context)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_network_says_its_output_shapes_exactly(name):
    entry = NETWORKS[name]
    layers = entry.build("tiny", entry.reference_at("tiny"))
    assert entry.description and entry.modality in PAPER_NETWORKS
    assert len(layers.modules) == len(layers.names) == entry.reference_at("tiny")
    h = torch.randn(2, *layers.input_shape)
    for module, shape in zip(layers.modules, layers.output_shapes(), strict=True):
        h = module(h)
        assert h.shape == (2 * shape[0], *shape[1:])


def test_networks_know_nothing_of_losses():
    imported = {m for name, deps in graph().items() if name.startswith("gimbench.models") for m in deps}
    assert "gimbench.models.presets" in imported and not any(m.startswith("gimbench.losses") for m in imported)


def test_output_shapes_draw_no_random_numbers():
    layers = NETWORKS["cpc-audio"].build("tiny", 6)
    torch.manual_seed(0)
    layers.output_shapes()
    drawn = torch.rand(1)
    torch.manual_seed(0)
    assert torch.rand(1) == drawn


def test_heads_follow_the_layers_output_shapes():
    audio = network("audio", "tiny", 6, [0, 5])
    spec = PRESETS["tiny"]["audio"]
    conv, gru = audio.head(0), audio.head(5)
    assert isinstance(conv, AudioInfoNCE) and not conv.codes_from_input and gru.codes_from_input
    assert conv.predictor.weight.shape == (spec.channels * spec.prediction_steps, spec.channels)
    assert gru.predictor.weight.shape == (spec.channels * spec.prediction_steps, spec.hidden)
    vision = build_network(network="gim-vision", preset="tiny", depth=3, heads_on=[1, 2], context="none", classes=5)
    assert isinstance(vision.head(2), Classifier) and vision.head(2).patches == 49
    assert vision.head(2).linear.weight.shape == (5, 4 * PRESETS["tiny"]["vision"].widths[2])
    gim = network("vision", "tiny", 3, [2])
    assert isinstance(gim.head(2), VisionInfoNCE) and gim.head(2).grid == 7


def test_paper_parameter_counts_match_the_reference():
    assert count(network("audio", "paper", 6, list(range(6)))) == 23_143_424  # GIM audio
    assert count(network("audio", "paper", 6, [5])) == 7_414_784  # CPC audio
    vision = network("vision", "paper", 3, [0, 1, 2])
    assert count(vision) == 15_401_472  # GIM vision
    assert [sum(p.numel() for p in vision.owned_parameters(k)) for k in range(3)] == [543_744, 2_526_720, 12_331_008]


def test_paper_layer_counts_match_the_reference():
    audio = network("audio", "paper", 6, [])
    assert [count(m) for m in audio.encoder] == [5_632, 2_097_664, 1_049_088, 1_049_088, 1_049_088, 591_360]
    vision = network("vision", "paper", 1, [])
    assert count(vision.encoder[0][1]) == 1_664 and count(vision.encoder[0][2]) == 74_368
    assert count(vision.encoder[0]) == 216_064


def test_cpc_vision_with_pixelcnn_has_our_documented_count():
    # Our PixelCNN (4 gated layers, (2,3) masked kernels) departs from the reference's 148,016,640.
    assert count(network("vision", "paper", 3, [2], "pixelcnn")) == 68_301_312


def test_paper_audio_sequence_lengths():
    assert audio_lengths(PRESETS["paper"]["audio"], 6) == [4095, 1023, 512, 257, 128, 128]


@pytest.mark.parametrize("depth", [1, 2, 3, 6, 9, 12, MAX_DEPTH])
def test_audio_depth_rule_shapes(depth):
    spec = PRESETS["tiny"]["audio"]
    net = network("audio", "tiny", depth, [])
    assert len(net) == depth and len(net.names) == depth
    h = torch.zeros(2, 1, spec.crop_samples)
    for k, length in enumerate(audio_lengths(spec, depth)):
        h = net.encoder[k](h)
        assert h.shape[-1] == length
    assert h.shape[1] == (spec.hidden if depth >= 2 else spec.channels)
    assert net.names[-1] == ("gru" if depth >= 2 else "conv1")


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 8, 12])
def test_vision_depth_rule_shapes(depth):
    spec = PRESETS["tiny"]["vision"]
    net = network("vision", "tiny", depth, [])
    h = net.encoder[0](torch.zeros(2, 1, 64, 64))
    assert h.shape == (2 * 49, 4 * spec.widths[0], 16, 16)
    for module in net.encoder[1:]:
        h = module(h)
    last = min(depth, 3)
    assert h.shape == (2 * 49, 4 * spec.widths[last - 1], 16 // 2 ** (last - 1), 16 // 2 ** (last - 1))


def test_deeper_encoders_have_more_parameters():
    for modality in ("audio", "vision"):
        sizes = [count(network(modality, "tiny", d, [])) for d in range(1, 13)]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_patchify_cuts_the_grid_row_major():
    net = network("vision", "tiny", 1, [])
    image = torch.arange(64 * 64, dtype=torch.float32).view(1, 1, 64, 64)
    patches = net.encoder[0][0](image)
    assert patches.shape == (49, 1, 16, 16)
    torch.testing.assert_close(patches[8, 0], image[0, 0, 8:24, 8:24])  # row 1, column 1
