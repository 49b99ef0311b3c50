"""InfoNCE heads alone: value at initialisation, learning on fixed inputs, shapes."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import batch, tiny

from gimbench.losses import (
    AudioInfoNCE,
    GridInfoNCE,
    VisionInfoNCE,
    info_nce,
    read_positions,
    split_read,
    stepwise_info_nce,
)


def test_info_nce_of_equal_scores_is_log_of_candidates():
    loss = info_nce(torch.zeros(4, 7), torch.zeros(4, 7, 10))
    assert loss.shape == ()
    assert loss.item() == pytest.approx(math.log(11), abs=1e-6)


def test_info_nce_is_low_when_the_positive_wins():
    assert info_nce(torch.full((3,), 20.0), torch.zeros(3, 10)).item() < 1e-6


def test_stepwise_info_nce_is_the_mean_over_steps_of_each_steps_valid_rows():
    g = torch.Generator().manual_seed(0)
    positive, negative = torch.randn(3, 20, 4, generator=g), torch.randn(3, 20, 4, 6, generator=g)
    per_step = [info_nce(positive[:, : 20 - k, k - 1], negative[:, : 20 - k, k - 1]) for k in range(1, 5)]
    torch.testing.assert_close(stepwise_info_nce(positive, negative), torch.stack(per_step).mean())


def test_an_audio_loss_reads_the_window_and_the_drawn_rows():
    codes = torch.arange(2 * 9 * 3, dtype=torch.float32).view(2, 9, 3)
    drawn = torch.tensor([[[0, 17], [9, 4]]]).expand(2, 2, 2)  # flat indices into the 2 x 9 rows
    window, picked = split_read(codes.flatten(0, 1)[read_positions(9, 3, 2, drawn)], 2, drawn)
    assert torch.equal(window, codes[:, 3:5])
    assert torch.equal(picked[0, 0, 1], codes[1, 8]) and torch.equal(picked[0, 1, 0], codes[1, 0])


@pytest.mark.parametrize("modality,negatives", [("audio", 10), ("vision", 16)])
def test_every_module_loss_at_initialisation_is_log_one_plus_negatives(modality, negatives):
    _, network, _ = tiny("gim", modality)
    h = batch(modality)
    torch.manual_seed(0)
    for k, module in enumerate(network.encoder):
        z = module(h)
        assert network.head(k)(h, z).item() == pytest.approx(math.log(1 + negatives), abs=0.05), f"module {k}"
        h = z


def rotating_codes(b: int, channels: int, length: int) -> torch.Tensor:
    """Codes whose future is a fixed rotation of their present: learnable by a linear predictor."""
    g = torch.Generator().manual_seed(0)
    freq = torch.rand(channels // 2, generator=g) * 0.5
    phase = torch.rand(b, channels // 2, 1, generator=g) * 6.28
    angle = freq[None, :, None] * torch.arange(length)[None, None, :] + phase
    return torch.cat([angle.cos(), angle.sin()], dim=1)


def _fit(head: torch.nn.Module, x_in: torch.Tensor, z_out: torch.Tensor, steps: int = 40) -> tuple[float, float]:
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    torch.manual_seed(0)
    first = head(x_in, z_out).item()
    for _ in range(steps):
        loss = head(x_in, z_out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return first, head(x_in, z_out).item()


def test_audio_head_learns_on_fixed_inputs():
    codes = rotating_codes(4, 16, 300)
    head = AudioInfoNCE(context_dim=16, code_dim=16, steps=12, negatives=10, window=128, codes_from_input=False)
    first, last = _fit(head, codes, codes)
    assert last < first - 0.5


def test_audio_head_predicts_input_codes_from_a_recurrent_context():
    codes = rotating_codes(4, 16, 200)
    context = torch.cat([codes, codes], dim=1)  # a 32-wide context that carries the codes
    head = AudioInfoNCE(context_dim=32, code_dim=16, steps=12, negatives=10, window=None, codes_from_input=True)
    assert head.predictor.weight.shape == (16 * 12, 32)
    first, last = _fit(head, codes, context)
    assert last < first - 0.5


def test_vision_head_learns_on_fixed_inputs():
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(2, 7, 24, generator=g)  # one code per grid row: rows below are predictable
    grid = rows[:, :, None, :].expand(2, 7, 7, 24)  # (B, row, col, C)
    maps = grid.reshape(2 * 49, 24)[:, :, None, None].expand(2 * 49, 24, 2, 2).contiguous()
    head = VisionInfoNCE(channels=24, grid=7, steps=5, negatives=16, context=None)
    assert len(head.predictors) == 5
    first, last = _fit(head, maps, maps)
    assert last < first - 0.5


def test_grid_head_on_a_map_starts_at_log_one_plus_negatives_and_learns():
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(2, 6, 64, generator=g)  # one code per row of the map: rows below are predictable
    maps = rows[:, :, None, :].expand(2, 6, 6, 64).permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)
    torch.manual_seed(0)
    head = GridInfoNCE(channels=64, steps=3, negatives=16)
    starts = []
    for scale in (1.0, 64**-0.5):  # the paper loss's unscaled scores, then 1/sqrt(C), with the same parameters
        head.scale = scale
        head.generator.manual_seed(0)
        starts.append(head(maps, maps).item())
    assert abs(starts[1] - math.log(17)) < 0.5 < abs(starts[0] - math.log(17))
    first, last = _fit(head, maps, maps)
    assert last < first - 0.5


def test_grid_head_reads_tokens_without_the_class_token():
    torch.manual_seed(0)
    head = GridInfoNCE(channels=8, steps=2, negatives=4)
    tokens = torch.randn(3, 1 + 16, 8)
    other = tokens.clone()
    other[:, 0] = 100.0  # the class token is no position of the grid
    losses = []
    for x in (tokens, other, tokens[:, 1:]):  # with, changed and without the class token
        head.generator.manual_seed(0)
        losses.append(head(x, x).item())
    assert losses[0] == losses[1] == losses[2]
