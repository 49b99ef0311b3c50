"""The invariants that define the project: gradient isolation, and greedy == end-to-end at depth 1."""

from __future__ import annotations

import pytest
import torch
from conftest import batch, captured_gradients, tiny, trained_parameters

from gimbench.profiling.meter import NULL_METER
from gimbench.strategies import STRATEGIES


class Amplified(torch.nn.Module):
    """A head whose loss is scaled up: if its gradient leaked anywhere, it would show there."""

    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, x_in, z_out, labels=None):
        return 1e4 * self.head(x_in, z_out, labels)


def _same(a, b) -> bool:
    # Close, not equal: multithreaded CPU conv backward may sum in another order from run to run
    # (seen: 5e-7 against gradients of 1e-3). A leak of the amplified loss would be ~1e4 times larger.
    return all(
        (x is None and y is None) or (x - y).abs().max() <= 1e-3 * y.abs().max() for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("modality", ["audio", "vision"])
@pytest.mark.parametrize("mode", ["per-module", "summed"])
def test_greedy_loss_of_module_above_leaves_modules_below_untouched(modality, mode):
    cfg, network, strategy = tiny("gim", modality, gim_mode=mode, depth=3)
    x = batch(modality)
    reference = captured_gradients(network, strategy, x)
    for k in range(1, len(network)):
        original = network.heads[str(k)]
        network.heads[str(k)] = Amplified(original)
        grads = captured_gradients(network, strategy, x)
        network.heads[str(k)] = original
        for below in range(k):
            assert _same(grads[below], reference[below]), f"loss of module {k} changed module {below}'s gradients"
        assert not _same(grads[k], reference[k]), "the amplified loss should change its own module"


@pytest.mark.parametrize("modality", ["audio", "vision"])
def test_end_to_end_gradients_reach_every_module(modality):
    cfg, network, strategy = tiny("cpc", modality, depth=3)
    grads = captured_gradients(network, strategy, batch(modality))
    for k, module_grads in enumerate(grads):
        assert module_grads is not None
        assert all(g is not None and g.abs().sum() > 0 for g in module_grads), f"module {k} got no gradient"


@pytest.mark.parametrize("modality", ["audio", "vision"])
def test_per_module_and_summed_give_the_same_gradients(modality):
    x = batch(modality)
    _, per_module, s1 = tiny("gim", modality, gim_mode="per-module")
    _, summed, s2 = tiny("gim", modality, gim_mode="summed")
    a = captured_gradients(per_module, s1, x)
    b = captured_gradients(summed, s2, x)
    for k, (ga, gb) in enumerate(zip(a, b, strict=True)):
        for pa, pb in zip(ga, gb, strict=True):
            torch.testing.assert_close(pa, pb, msg=f"module {k}")


def _train(model: str, modality: str, steps: int) -> list[torch.Tensor]:
    # Dense local gradients: the same float sums as end-to-end (sparse ones agree to float tolerance, tested in
    # test_sparse_local_grad.py); end-to-end CPC's gradients are dense anyway.
    dense = {"local_grad": "dense"} if model == "gim" else {}
    return trained_parameters(model, modality, steps, depth=1, **dense)


@pytest.mark.parametrize("modality", ["audio", "vision"])
def test_depth_one_greedy_equals_end_to_end(modality):
    torch.set_num_threads(1)  # one thread: the same summation order in both runs, so exact equality
    for a, b in zip(_train("gim", modality, 3), _train("cpc", modality, 3), strict=True):
        assert torch.equal(a, b)


def test_sequential_trains_one_module_at_a_time_and_freezes_the_rest():
    cfg, network, strategy = tiny("gim", "audio", gim_mode="sequential", depth=3, steps=6)
    optimizers = strategy.make_optimizers(network)
    owner = {id(p): k for k in range(3) for p in network.owned_parameters(k)}
    trained = []
    for step in range(6):
        before = {id(p): p.detach().clone() for p in network.parameters()}
        losses = strategy.step(network, optimizers, batch("audio", seed=step), NULL_METER, step)
        computed = [k for k, loss in enumerate(losses) if loss is not None]
        moved = {owner[id(p)] for p in network.parameters() if not torch.equal(before[id(p)], p)}
        assert moved == set(computed), f"step {step}: losses at {computed}, parameters moved in {moved}"
        trained += computed
    assert trained == [0, 0, 1, 1, 2, 2]


def test_every_registered_model_gives_each_module_an_optimizer_over_its_own_parameters():
    for name in STRATEGIES:
        _, network, strategy = tiny(name, "audio")
        optimizers = strategy.make_optimizers(network)
        assert len(optimizers) == len(network)
        trains = any(o is not None for o in optimizers)  # baselines (random, mfcc) train nothing: all None
        for k, optimizer in enumerate(optimizers):
            owned = {id(p) for p in network.owned_parameters(k)}
            held = set() if optimizer is None else {id(p) for g in optimizer.param_groups for p in g["params"]}
            assert held == (owned if trains else set()), f"{name}: module {k}'s optimizer holds other parameters"
