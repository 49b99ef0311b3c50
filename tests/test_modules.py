"""``--modules K``: the encoder's layers cut into K gradient-isolated modules (``--split even|balanced``)."""

from __future__ import annotations

from itertools import combinations

import pytest
import torch
from conftest import Capture, batch, reseed_heads, tiny, trained_parameters

from gimbench.config import ConfigError, RunConfig, resolve
from gimbench.models.cuts import even_groups, min_max_groups
from gimbench.models.group import Group
from gimbench.profiling.meter import NULL_METER
from gimbench.runs.split import measured_layer_costs
from gimbench.strategies import spec_of
from gimbench.strategies.split import balanced_layers


def _train(model: str, modality: str, steps: int = 3, **options) -> list[torch.Tensor]:
    return trained_parameters(model, modality, steps, depth=3, **options)


@pytest.mark.parametrize("modality", ["audio", "vision"])
def test_one_module_is_end_to_end_cpc_bit_for_bit(modality):
    torch.set_num_threads(1)  # one thread and dense local gradients: the same float sums in both runs
    gim = _train("gim", modality, modules=1, local_grad="dense")
    cpc = _train("cpc", modality)
    assert len(gim) == len(cpc)
    for a, b in zip(gim, cpc, strict=True):
        assert torch.equal(a, b)


def test_one_module_per_layer_is_todays_gim():
    _, network, _ = tiny("gim", "audio", depth=3, modules=3)
    _, default, _ = tiny("gim", "audio", depth=3)
    assert network.names == default.names == ["conv1", "conv2", "gru"]
    assert not any(isinstance(m, Group) for m in network.encoder)
    for a, b in zip(_train("gim", "audio", modules=3), _train("gim", "audio"), strict=True):
        assert torch.equal(a, b)


def test_two_modules_are_isolated_at_the_cut():
    """Module 0 (conv1-conv2 of depth 4) gets the same gradients whatever module 1's loss is."""
    def module0_grads(scale_top_head: float) -> list[torch.Tensor]:
        _, network, strategy = tiny("gim", "audio", depth=4, modules=2)
        assert network.names == ["conv1-conv2", "conv3-gru"]
        with torch.no_grad():
            for p in network.head(1).parameters():
                p.mul_(scale_top_head)
        captures = [Capture(network.owned_parameters(k)) for k in range(2)]
        torch.manual_seed(0)
        reseed_heads(network, 0)
        strategy.step(network, captures, batch("audio", 4), NULL_METER, 0)
        assert all(g is not None for g in captures[1].grads)
        return captures[0].grads

    for a, b in zip(module0_grads(1.0), module0_grads(-3.0), strict=True):
        assert torch.equal(a, b)


def test_even_groups_cut_by_count():
    assert even_groups(6, 4) == [[0, 1], [2, 3], [4], [5]]
    assert even_groups(3, 1) == [[0, 1, 2]]
    with pytest.raises(ValueError, match="cannot cut"):
        even_groups(2, 3)


def _brute_force(n: int, k: int, cost) -> float:
    best = float("inf")
    for cuts in combinations(range(1, n), k - 1):
        bounds = [0, *cuts, n]
        best = min(best, max(cost(a, b) for a, b in zip(bounds, bounds[1:], strict=False)))
    return best


def test_balanced_picks_the_cut_a_brute_force_search_finds():
    cfg, _, _ = tiny("gim", "audio", depth=5, steps=1)
    kept, peak = measured_layer_costs(cfg, spec_of(cfg), 0, batch("audio", 4), None, torch.device("cpu"))
    assert all(k > 0 for k in kept) and all(p > k for p, k in zip(peak, kept, strict=True))
    # Tensor bytes: the same on every call, so a resumed run rebuilds the same cut.
    assert measured_layer_costs(cfg, spec_of(cfg), 0, batch("audio", 4, seed=1), None, torch.device("cpu")) == \
        (kept, peak)

    def modelled(first: int, end: int) -> float:
        return sum(kept[first : end - 1]) + peak[end - 1]

    for modules in range(1, 6):
        groups = balanced_layers(kept, peak, modules)
        assert [i for g in groups for i in g] == list(range(5)) and len(groups) == modules
        assert max(modelled(g[0], g[-1] + 1) for g in groups) == _brute_force(5, modules, modelled)


def test_min_max_groups_match_brute_force_on_random_costs():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        costs = torch.randint(1, 50, (7,), generator=g).tolist()
        top = torch.randint(0, 30, (7,), generator=g).tolist()

        def cost(first, end, costs=costs, top=top):
            return sum(costs[first:end]) + top[end - 1]

        for k in (2, 3, 4):
            groups = min_max_groups(7, k, cost)
            assert max(cost(g[0], g[-1] + 1) for g in groups) == _brute_force(7, k, cost)


def test_a_balanced_run_trains_the_modules_it_cut():
    cfg, network, strategy = tiny("gim", "vision", depth=3, modules=2, split="balanced", steps=1)
    assert len(network) == 2 and [layer for g in network.layers for layer in g] == [0, 1, 2]
    losses = strategy.step(network, strategy.make_optimizers(network), batch("vision", 2), NULL_METER, 0)
    assert all(loss is not None and torch.isfinite(loss) for loss in losses)


@pytest.mark.parametrize(("options", "message"), [
    ({"modules": 7, "depth": 6}, "--modules 7: --depth 6 builds 6 layers"),
    ({"modules": 0}, "--modules 0"),
    ({"model": "cpc", "modules": 2}, "--modules 2 applies to --model gim or --model greedy-supervised"),
    ({"split": "balanced", "model": "cpc"}, "--split balanced applies to"),
    ({"modules": 2, "gim_mode": "sequential", "steps": 1}, "needs --steps >= --modules"),
])
def test_bad_combinations_are_refused_naming_the_flag(options, message):
    with pytest.raises(ConfigError, match=message):
        resolve(RunConfig(preset="tiny", device="cpu", **options))


def test_module_parallel_needs_no_more_processes_than_modules():
    cfg = RunConfig(preset="tiny", device="cpu", gim_mode="module-parallel", modules=2, nproc=3)
    with pytest.raises(ConfigError, match="3 processes cannot split 2 modules"):
        resolve(cfg, world_size=3)
    assert resolve(RunConfig(preset="tiny", device="cpu", gim_mode="module-parallel", modules=2, nproc=2),
                   world_size=2).modules == 2


def test_phone_probe_frames_of_a_module_are_those_of_its_top_layer():
    from gimbench.probe import frame_geometry

    _, layers, _ = tiny("gim", "audio", depth=4)
    _, cut, _ = tiny("gim", "audio", depth=4, modules=2)
    assert frame_geometry(cut) == [frame_geometry(layers)[1], frame_geometry(layers)[3]]


def test_a_sweep_over_modules_drops_them_where_they_do_not_apply():
    from gimbench.cli import make_parser
    from gimbench.sweep.grid import configurations

    args = make_parser().parse_args(["sweep", "--model", "gim,cpc", "--modules", "1,2,3,6"])
    configs, _ = configurations(args, args.run_options)
    assert [c.label for c in configs] == ["gim-modules1", "gim-modules2", "gim-modules3", "gim-modules6", "cpc"]
