"""config.resolve: the one place every option is checked, for the CLI and the Python API alike."""

from __future__ import annotations

import dataclasses

import pytest

from gimbench.config import ConfigError, RunConfig, applies, parse_size, resolve

TINY = {"preset": "tiny", "device": "cpu"}


def test_resolving_a_recorded_config_again_changes_nothing():
    for cfg in (RunConfig(model="gim", gim_mode="sequential", steps=12, **TINY), RunConfig(model="cpc", **TINY),
                RunConfig(model="mfcc", **TINY), RunConfig(model="gim", modality="vision", **TINY)):
        resolved = resolve(cfg)
        assert resolve(resolved, recorded=True) == resolved


@pytest.mark.parametrize(("steps", "given", "warmup"), [(3, None, 1), (4, None, 2), (10, None, 5), (300, None, 5),
                                                       (1, None, 0), (3, 5, 5), (300, 0, 0)])
def test_the_default_warmup_leaves_a_short_run_steps_to_measure(steps, given, warmup):
    # The default is 5 steps, at most half of --steps; a warm-up the user gives is kept, even one that takes
    # every step.
    assert resolve(RunConfig(model="cpc", steps=steps, warmup_steps=given, **TINY)).warmup_steps == warmup


def test_the_python_api_refuses_what_the_cli_refuses():
    with pytest.raises(ConfigError, match="--batch-size and --find-max-batch exclude each other"):
        resolve(RunConfig(find_max_batch=True, memory_budget="1GiB", batch_size=8, **TINY))
    with pytest.raises(ConfigError, match=r"--gim-mode summed applies to --model gim only \(this run is --model cpc\)"):
        resolve(RunConfig(model="cpc", gim_mode="summed", **TINY))
    with pytest.raises(ConfigError, match="--data-root is for real datasets"):
        resolve(RunConfig(data_root="/data", **TINY))
    # A batch size the search found, recorded beside --find-max-batch, is not a user's mistake.
    found = dataclasses.replace(resolve(RunConfig(find_max_batch=True, memory_budget="1GiB", **TINY)), batch_size=24)
    assert resolve(found, recorded=True).batch_size == 24


def test_options_apply_where_the_strategies_say():
    mp = RunConfig(model="gim", gim_mode="module-parallel")
    assert applies("max_inflight", mp) and applies("split_ranks", mp) and applies("local_grad", mp)
    assert not applies("max_inflight", RunConfig(model="gim")) and not applies("gim_mode", RunConfig(model="cpc"))
    assert applies("micro_batches", RunConfig(model="cpc", pipeline="gpipe"))
    assert not applies("micro_batches", RunConfig(model="cpc")) and not applies("local_grad", RunConfig(model="cpc"))
    assert not applies("depth", RunConfig(model="mfcc")) and not applies("context", RunConfig(modality="audio"))


def test_processes_are_passed_in_and_checked():
    with pytest.raises(ConfigError, match="--nproc 2: start the run with `gimbench run --nproc 2` or torchrun"):
        resolve(RunConfig(nproc=2, **TINY))
    assert resolve(RunConfig(nproc=2, batch_size=8, **TINY), 2).nproc == 2
    assert resolve(RunConfig(batch_size=8, **TINY), 2).nproc == 2  # torchrun's world, --nproc left out
    with pytest.raises(ConfigError, match="--batch-size 9 is the global batch of the 2 processes"):
        resolve(RunConfig(batch_size=9, **TINY), 2)
    with pytest.raises(ConfigError, match="--find-max-batch searches with one process"):
        resolve(RunConfig(find_max_batch=True, memory_budget="1GiB", **TINY), 2)
    with pytest.raises(ConfigError, match="--nproc: 0 is not a number of processes"):
        resolve(RunConfig(**TINY), 0)


def test_a_strategys_own_checks_and_fixed_depth():
    with pytest.raises(ConfigError, match=r"--micro-batches 3 must divide the batch size \(8\)"):
        resolve(RunConfig(model="cpc", pipeline="gpipe", micro_batches=3, batch_size=8, depth=2, **TINY), 2)
    with pytest.raises(ConfigError, match="--gim-mode sequential needs --steps >= --depth"):
        resolve(RunConfig(gim_mode="sequential", depth=3, steps=2, **TINY))
    with pytest.raises(ConfigError, match="--model mfcc is for --modality audio"):
        resolve(RunConfig(model="mfcc", modality="vision", **TINY))
    assert resolve(RunConfig(model="mfcc", **TINY)).depth == 1


@pytest.mark.parametrize(("text", "size"), [("512MiB", 512 * 2**20), ("1.5GB", 1_500_000_000), ("42", 42)])
def test_sizes_parse_as_users_write_them(text, size):
    assert parse_size(text) == size
