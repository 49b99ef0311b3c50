"""Sparse local gradients (gimbench/strategies/sparse.py) against the dense computation they replace, and the
module-parallel split balanced by measured cost (gimbench/distributed/balance.py)."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from conftest import batch, tiny

from gimbench.config import ConfigError
from gimbench.models.audio import ConvModule
from gimbench.models.cuts import balanced_groups
from gimbench.profiling.meter import NULL_METER
from gimbench.profiling.resident import resident_breakdown
from gimbench.strategies.heads import build_network
from gimbench.strategies.sparse import local_grad_modes, sparse_forward_loss

CROP = {"tiny": 5120, "paper": 20480}


def conv_inputs(preset: str, b: int = 3):
    """The depth-6 audio network at ``preset`` and each conv module's input for one random batch."""
    torch.manual_seed(0)
    network = build_network(network="cpc-audio", preset=preset, depth=6, heads_on=list(range(6)), context="none")
    h, inputs = 0.3 * torch.randn(b, 1, CROP[preset]), []
    with torch.no_grad():
        for module in network.encoder:
            if isinstance(module, ConvModule):
                inputs.append(h)
                h = module(h)
    return network, inputs


def gradients(network, k: int, h: torch.Tensor, sparse: bool):
    """Module k's loss, its owned parameters' gradients, its output and the head's generator state after."""
    head, params = network.head(k), list(network.owned_parameters(k))
    if sparse:
        z, loss = sparse_forward_loss(network, k, h, NULL_METER)
    else:
        z = network.encoder[k](h)
        loss = head(h, z)
    loss.backward()
    grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    return loss.detach(), grads, z.detach(), head.generator.get_state()


def assert_same(network, k: int, h: torch.Tensor) -> None:
    """Dense and sparse from the same generator state: the same loss, draws, output and gradients (float32 sums
    over thousands of terms in another order: within 1e-5 of the largest gradient; a wrong receptive field or
    a missed row is off by the size of a gradient)."""
    state = network.head(k).generator.get_state()
    dense = gradients(network, k, h, sparse=False)
    network.head(k).generator.set_state(state)
    sparse = gradients(network, k, h, sparse=True)
    torch.testing.assert_close(sparse[0], dense[0], rtol=1e-6, atol=0)  # summed in chunks of sequences
    assert torch.equal(dense[3], sparse[3]), f"module {k}: the generator advanced differently"
    assert torch.equal(dense[2], sparse[2]), f"module {k}: outputs differ"
    for g_dense, g_sparse in zip(dense[1], sparse[1], strict=True):
        assert g_dense.abs().max() > 0
        torch.testing.assert_close(g_sparse, g_dense, rtol=1e-4, atol=1e-5 * float(g_dense.abs().max()))


@pytest.mark.parametrize("preset", ["tiny", pytest.param("paper", marks=pytest.mark.slow)])
def test_sparse_equals_dense_for_every_conv_module(preset):
    network, inputs = conv_inputs(preset)
    for k, h in enumerate(inputs):
        assert_same(network, k, h)


class Scripted:
    """Stands in for a head's ``draw``: the window starts at ``start`` and the drawn negatives are ``ends``
    (the first and last steps of every sequence) repeated, so both sequence ends are read."""

    def __init__(self, start_at_end: bool) -> None:
        self.start_at_end = start_at_end

    def __call__(self, high: int, size: tuple[int, ...], device: torch.device) -> torch.Tensor:
        if size == ():
            return torch.tensor(high - 1 if self.start_at_end else 0)
        sequences = size[0]
        length = high // sequences
        ends = torch.tensor([[s * length, s * length + length - 1] for s in range(sequences)]).flatten()
        return ends.repeat(-(-torch.Size(size).numel() // len(ends)))[: torch.Size(size).numel()].view(size)


@pytest.mark.parametrize("start_at_end", [False, True])
def test_sparse_equals_dense_at_the_window_and_sequence_ends(start_at_end):
    network, inputs = conv_inputs("tiny")
    for k, h in enumerate(inputs):
        network.head(k).draw = Scripted(start_at_end)
        assert_same(network, k, h)


def train(local_grad: str, steps: int = 5) -> list[torch.Tensor]:
    cfg, network, strategy = tiny("gim", depth=6, local_grad=local_grad)
    assert strategy.local_grads(network) == (["sparse"] * 5 + ["dense"] if local_grad == "sparse" else ["dense"] * 6)
    optimizers = strategy.make_optimizers(network)
    for step in range(steps):
        strategy.step(network, optimizers, batch("audio", seed=step), NULL_METER, step)
    return [p.detach().clone() for p in network.parameters()]


def test_five_sparse_updates_equal_five_dense_ones():
    for dense, sparse in zip(train("dense"), train("sparse"), strict=True):
        torch.testing.assert_close(sparse, dense, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_auto_goes_sparse_wherever_it_is_exact(preset):
    network, _ = conv_inputs(preset)
    for setting in ("auto", "sparse"):  # every conv module, the last one too; never the GRU
        assert local_grad_modes(network, setting) == ["sparse"] * 5 + ["dense"]
    assert local_grad_modes(network, "dense") == ["dense"] * 6


def test_end_to_end_and_vision_stay_dense():
    _, cpc_network, cpc = tiny("cpc", depth=1)
    assert cpc.local_grads(cpc_network) == ["dense"]
    with pytest.raises(ConfigError, match="--local-grad sparse applies to --model gim or --model greedy-supervised"):
        tiny("cpc", depth=1, local_grad="sparse")  # end-to-end gradients are never local: refused, not ignored
    _, vision_network, gim = tiny("gim", "vision", depth=3, local_grad="sparse")
    assert gim.local_grads(vision_network) == ["dense"] * 3


def brute_force_busiest(costs: list[float], ranks: int) -> float:
    """The smallest busiest-group cost over every way to cut ``costs`` into ``ranks`` contiguous groups."""
    cuts = itertools.combinations(range(1, len(costs)), ranks - 1)
    return min(max(sum(costs[a:b]) for a, b in itertools.pairwise((0, *c, len(costs)))) for c in cuts)


def test_balanced_split_is_the_best_contiguous_cut():
    rng = random.Random(0)
    for n in range(1, 9):
        for ranks in range(1, n + 1):
            costs = [rng.uniform(0.1, 10) for _ in range(n)]
            groups = balanced_groups(costs, ranks)
            assert [k for g in groups for k in g] == list(range(n)) and all(groups) and len(groups) == ranks
            assert max(sum(costs[k] for k in g) for g in groups) == pytest.approx(brute_force_busiest(costs, ranks))
    # Depth 6 on 2 ranks, costs shaped like the tiny preset's (conv1 and conv2 dominate): not the count cut.
    assert balanced_groups([28, 36, 22, 10, 6, 9], 2) == [[0, 1], [2, 3, 4, 5]]
    with pytest.raises(ValueError):
        balanced_groups([1.0, 2.0], 3)


def test_resident_breakdown_splits_parameters_and_adam_state_between_encoder_and_head():
    cfg, network, strategy = tiny("gim", depth=2)
    optimizers = strategy.make_optimizers(network)
    strategy.step(network, optimizers, batch("audio"), NULL_METER, 0)
    figures = resident_breakdown(network, optimizers[0], 0)
    encoder = 4 * sum(p.numel() for p in network.encoder[0].parameters())
    assert figures["encoder_parameter_bytes"] == encoder == figures["encoder_gradient_bytes"]
    assert figures["head_parameter_bytes"] == 4 * network.head(0).predictor.weight.numel()
    for part in ("encoder", "head"):  # Adam: two moments per parameter and a step count per tensor
        assert 2 * figures[f"{part}_parameter_bytes"] < figures[f"{part}_optimizer_bytes"] < \
            2 * figures[f"{part}_parameter_bytes"] + 64
