"""``--precision`` and ``--optimizer``: every method trains with them, bf16 lowers a step's peak where activations
dominate it, SGD's one momentum buffer halves Adam's two, and what cannot run is refused in one line."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from conftest import batch, tiny

from gimbench.cli import main
from gimbench.profiling.memory import MemoryMeter
from gimbench.profiling.meter import NULL_METER
from gimbench.strategies import STRATEGIES

CPU = torch.device("cpu")
DEPTH = 2
TINY_RUN = ["--preset", "tiny", "--device", "cpu", "--depth", "2", "--batch-size", "2", "--steps", "2",
            "--warmup-steps", "0", "--profile-steps", "1", "--memory-steps", "1", "--no-probe", "--quiet"]
# Every variant trained in this process (the spread ones are refused under 16 bits; see below).
VARIANTS = [(name, {m.choice: v} if m.choice else {}) for name, m in sorted(STRATEGIES.items())
            for v, spec in m.variants.items() if not spec.spreads]


def measured_step(model: str, modality: str = "audio", size: int = 4, memory: bool = True, **options):
    """One strategy step after a first (so the optimizers' state exists), measured by the memory meter unless not
    ``memory``: its memory (or ``None``), the network, its optimizers and the step's losses."""
    _, network, strategy = tiny(model, modality, depth=DEPTH if model != "mfcc" else None, steps=DEPTH, **options)
    optimizers = strategy.make_optimizers(network)
    labels = torch.zeros(size, dtype=torch.long)
    torch.manual_seed(0)
    strategy.step(network, optimizers, batch(modality, size, seed=1), NULL_METER, 0, labels=labels)
    meter = MemoryMeter(network, optimizers, CPU) if memory else NULL_METER
    with meter.step():
        losses = strategy.step(network, optimizers, batch(modality, size), meter, 1, labels=labels)
    return meter.steps[0] if memory else None, network, optimizers, losses


@pytest.mark.parametrize(("model", "variant"), VARIANTS)
@pytest.mark.parametrize(("precision", "optimizer"), [("bf16", "adamw"), ("fp32", "sgd")])
def test_every_method_trains_at_every_precision_and_optimizer_on_the_cpu(model, variant, precision, optimizer):
    before = tiny(model, "audio", depth=DEPTH if model != "mfcc" else None, **variant)[1]
    _, network, optimizers, losses = measured_step(model, size=2, memory=False, precision=precision,
                                                   optimizer=optimizer, **variant)
    assert all(loss is None or torch.isfinite(loss) and loss.dtype == torch.float32 for loss in losses)  # fp32 losses
    kinds = {type(o).__name__.lower() for o in optimizers if o is not None}
    assert kinds <= {optimizer}
    changed = any(not torch.equal(a, b) for a, b in zip(before.parameters(), network.parameters(), strict=True))
    assert changed == bool(kinds)  # trained methods moved their parameters, frozen ones did not


@pytest.mark.parametrize("model", ["cpc", "gim"])
def test_vision_trains_in_bf16(model):
    memory, _, _, losses = measured_step(model, "vision", size=2, precision="bf16", context="none")
    assert torch.isfinite(losses[-1]) and memory.peak.by_category["activation"] > 0


@pytest.mark.slow  # two memory-tracked steps
def test_bf16_lowers_the_step_peak_where_activations_dominate_it():
    fp32 = measured_step("cpc", size=8)[0]
    bf16 = measured_step("cpc", size=8, precision="bf16")[0]
    # Meaningful only where activations are most of the peak: resident state is a small part of it here.
    assert fp32.resident < 0.1 * fp32.allocator_peak
    assert bf16.peak.by_category["activation"] < 0.7 * fp32.peak.by_category["activation"]
    assert bf16.allocator_peak < 0.8 * fp32.allocator_peak
    assert bf16.resident == fp32.resident  # parameters, gradients and optimizer state stay float32


def _trainable(network, k: int) -> int:
    return sum(p.numel() for p in network.owned_parameters(k) if p.requires_grad)


@pytest.mark.slow  # two memory-tracked steps
def test_sgd_keeps_one_buffer_per_parameter_and_adam_two():
    sgd, network, sgd_optimizers, _ = measured_step("gim", size=2, optimizer="sgd")
    adam = measured_step("gim", size=2, optimizer="adam")[0]
    parameters = sum(_trainable(network, k) for k in range(len(network)))
    tensors = sum(len(list(network.owned_parameters(k))) for k in range(len(network)))
    # float32 buffers: SGD's momentum (one per parameter); Adam's two moments, and a step count per tensor.
    assert sgd.peak.by_category["optimizer"] == 4 * parameters
    assert 8 * parameters <= adam.peak.by_category["optimizer"] <= 8 * parameters + 8 * tensors
    assert adam.resident - sgd.resident == adam.peak.by_category["optimizer"] - sgd.peak.by_category["optimizer"]
    assert all(isinstance(o, torch.optim.SGD) and o.defaults["momentum"] == 0.9 for o in sgd_optimizers)


@pytest.mark.parametrize(("args", "says"), [
    (["--precision", "fp16", "--device", "cpu"], "--precision fp16 needs CUDA"),
    (["--precision", "bf16", "--gim-mode", "module-parallel", "--nproc", "2"],
     "--gim-mode module-parallel passes float32 activations between processes"),
])
def test_what_cannot_run_is_refused_in_one_line(tmp_path, capsys, args, says):
    assert main(["run", "--out", str(tmp_path), *TINY_RUN, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and err.startswith("gimbench: error:") and "\n" not in err


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cpc", "gim"])
def test_a_bf16_sgd_run_records_its_precision_optimizer_and_learning_rate(tmp_path, capsys, model):
    assert main(["run", "--model", model, "--precision", "bf16", "--optimizer", "sgd", "--out", str(tmp_path),
                 "--name", "r", *TINY_RUN[:-1]]) == 0
    config = json.loads((tmp_path / "r" / "results.json").read_text())["config"]
    assert (config["precision"], config["optimizer"], config["lr"]) == ("bf16", "sgd", 5e-2)  # the tiny preset's
    assert "bf16 · sgd lr 0.05" in capsys.readouterr().out


def test_the_fp16_gradient_scaler_is_saved_and_a_measurement_leaves_it_as_it_was():
    # The CLI runs fp16 on CUDA only; torch's CPU scaler runs the same code path here.
    cfg, network, _ = tiny("gim", "audio", depth=2, steps=3)
    strategy = STRATEGIES["gim"].variant(cfg).trains(dataclasses.replace(cfg, precision="fp16"),
                                                     STRATEGIES["gim"].variant(cfg))
    optimizers = strategy.make_optimizers(network)
    for step in range(2):
        strategy.step(network, optimizers, batch("audio", seed=step), NULL_METER, step)
        state = strategy.state()
        strategy.train_alone(network, 0, batch("audio"), optimizers[0], NULL_METER)  # as the greedy floor does
        assert strategy.state() == state
    assert set(state["scaler"]) >= {"scale", "_growth_tracker"} and state["scaler"]["_growth_tracker"] > 0
    fresh = STRATEGIES["gim"].variant(cfg).trains(dataclasses.replace(cfg, precision="fp16"),
                                                  STRATEGIES["gim"].variant(cfg))
    fresh.load_state(state)
    assert fresh.state() == state


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 runs on CUDA only")
@pytest.mark.parametrize("model", ["cpc", "gim"])
def test_an_fp16_run_trains_on_cuda(tmp_path, model):
    run = [arg if arg != "cpu" else "cuda" for arg in TINY_RUN]
    assert main(["run", "--model", model, "--precision", "fp16", "--out", str(tmp_path), "--name", "r", *run]) == 0
    doc = json.loads((tmp_path / "r" / "results.json").read_text())
    assert doc["config"]["precision"] == "fp16" and doc["step"]["peak_memory_bytes"] > 0


def test_precision_and_optimizer_are_sweep_dimensions(tmp_path, capsys):
    from gimbench.cli import make_parser
    from gimbench.sweep.grid import configurations

    parsed = make_parser().parse_args(["sweep", "--model", "cpc,gim", "--precision", "fp32,bf16", "--optimizer",
                                       "adam,sgd"])
    configs = configurations(parsed, parsed.run_options)[0]
    assert len(configs) == 8
    assert {(c.values["precision"], c.values["optimizer"]) for c in configs} == {
        (p, o) for p in ("fp32", "bf16") for o in ("adam", "sgd")}
    assert main(["sweep", "--precision", "fp32,fp16", "--device", "cpu", "--out", str(tmp_path / "s")]) == 2
    assert "--precision fp16 needs CUDA" in capsys.readouterr().err


@pytest.mark.slow  # memory-tracked steps and the floor
def test_a_bf16_floor_is_measured_in_bf16_and_stays_under_the_per_module_step_peak(tmp_path):
    # The floor trains each module alone on its input; that input must be what a bf16 step hands the module
    # (bf16), not a float32 copy of twice the bytes: paper audio showed floor 576.8 > step peak 469.4 MiB.
    assert main(["run", "--model", "gim", "--precision", "bf16", "--depth", "3", "--batch-size", "16", "--steps", "3",
                 "--warmup-steps", "1", "--memory-steps", "1", "--profile-steps", "0", "--preset", "tiny",
                 "--device", "cpu", "--no-probe", "--quiet", "--out", str(tmp_path), "--name", "r"]) == 0
    step = json.loads((tmp_path / "r" / "results.json").read_text())["step"]
    assert 0 < step["floor_bytes"] <= step["peak_memory_bytes"]
