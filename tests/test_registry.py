"""Registry-wide checks: every registered strategy, dataset and distributed engine, without a list to keep."""

from __future__ import annotations

import math

import pytest
import torch

from gimbench.config import ConfigError, RunConfig, resolve
from gimbench.data import DATASETS, make_source
from gimbench.distributed.engine import ENGINES
from gimbench.registry import Registry
from gimbench.runs.build import build
from gimbench.strategies import STRATEGIES
from gimbench.trainer import Trainer

VARIANTS = [(name, value, strategy) for name, method in sorted(STRATEGIES.items())
            for value, strategy in method.variants.items()]


def config_of(name: str, value: str, **options) -> RunConfig:
    method = STRATEGIES[name]
    chosen = {method.choice: value} if method.choice else {}
    return RunConfig(model=name, preset="tiny", device="cpu", steps=4, batch_size=4, **chosen, **options)


def test_a_name_registers_once():
    registry = Registry("thing")
    registry.register("a")(1)
    with pytest.raises(KeyError, match="thing 'a' is registered twice"):
        registry.register("a")(2)


@pytest.mark.parametrize(("name", "value", "strategy"), VARIANTS, ids=[f"{n}-{v}" if v else n for n, v, _ in VARIANTS])
def test_every_strategy_describes_itself_and_trains_where_it_says(name, value, strategy):
    assert strategy.description and STRATEGIES[name].description
    assert set(strategy.own_options()) <= set(RunConfig.__dataclass_fields__)
    assert strategy.engine in ENGINES  # the mode that runs it on several processes
    modality = strategy.modalities[0]
    if strategy.spreads:  # it needs processes of its own: refused alone, resolved for two
        with pytest.raises(ConfigError, match="spreads the modules over processes"):
            resolve(config_of(name, value, modality=modality, depth=2))
        assert resolve(config_of(name, value, modality=modality, depth=2), 2).nproc == 2
        return
    cfg = resolve(config_of(name, value, modality=modality, depth=None if strategy.depth else 2))
    parts = build(cfg)
    before = [p.detach().clone() for p in parts.network.parameters()]
    steps = strategy.cycle(cfg.depth)
    history = Trainer(parts, cfg.batch_size, cfg.seed).fit(steps)
    assert len(history.losses) == steps and all(len(losses) == len(parts.network) for losses in history.losses)
    assert all(math.isfinite(v) for losses in history.losses for v in losses if v is not None)
    moved = any(not torch.equal(a, b) for a, b in zip(before, parts.network.parameters(), strict=True))
    trains = any(o is not None for o in parts.optimizers)
    assert moved == trains  # baselines that train nothing leave every parameter as it was


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_says_what_it_needs(name, tmp_path):
    dataset = DATASETS[name]
    assert dataset.description
    modalities = [dataset.modality] if dataset.modality else ["audio", "vision"]
    for modality in modalities:
        cfg = RunConfig(data=name, modality=modality, preset="tiny", device="cpu")
        if dataset.needs_root:
            with pytest.raises(ConfigError, match=f"--data {name} needs --data-root"):
                resolve(cfg)
        else:
            source = make_source(resolve(cfg))
            x, y = source.batch(2, torch.Generator().manual_seed(0))
            assert x.dtype == torch.float32 and len(x) == len(y) == 2
    for other in {"audio", "vision"} - set(modalities):
        with pytest.raises(ConfigError, match=f"--data {name} is a dataset of {dataset.modality}"):
            resolve(RunConfig(data=name, modality=other, data_root=str(tmp_path), preset="tiny", device="cpu"))


@pytest.mark.parametrize("mode", sorted(ENGINES))
def test_every_engine_records_its_mode_and_agrees_on_stops(mode):
    engine = ENGINES[mode]()
    assert engine.mode == mode  # results.json's distributed.mode names the registry entry
    assert "interrupted" in engine.agreed_failures  # a stop reaches every rank at one step, so rows are gathered
