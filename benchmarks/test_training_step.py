"""Real training steps of every method, modality and depth, timed by pytest-benchmark.

    pytest benchmarks/ --benchmark-only                    # the tiny preset on CPU, paper on CUDA
    pytest benchmarks/ --benchmark-only --benchmark-autosave   # save under .benchmarks/ to compare later

One round is one trainer step (batch, strategy step, device sync) of the network ``gimbench run``
builds; under ``sequential`` GIM successive rounds train modules 0, 1, ..., depth-1 in turn. The
preset and device are chosen like ``gimbench run --preset auto --device auto``. Before the timed
rounds, one warm-up cycle (every module trains once) and one schedule cycle of memory-tracked steps
put the per-module and step peaks and the greedy floor into ``benchmark.extra_info`` (``gimbench
bench-compare`` checks them for regressions).
"""

from __future__ import annotations

import pytest

from gimbench.config import RunConfig
from gimbench.models import MODALITIES
from gimbench.runs.run import resolve_config
from gimbench.runs.stepper import Stepper

METHODS = [("cpc", "per-module"), ("gim", "per-module"), ("gim", "summed"), ("gim", "sequential"),
           ("random", "per-module"), ("mfcc", "per-module"), ("supervised", "per-module"),
           ("greedy-supervised", "per-module")]
DEPTHS = (1, 3, 6)
MEMORY_KEYS = ("memory_backend", "step_peak_bytes", "module_peak_bytes")


def method_name(model: str, mode: str) -> str:
    return f"gim-{mode}" if model == "gim" else model


CASES = [pytest.param(model, mode, modality, depth, id=f"{method_name(model, mode)}-{modality}-d{depth}")
         for modality in MODALITIES for model, mode in METHODS for depth in DEPTHS
         if model != "mfcc" or (modality, depth) == ("audio", 1)]  # MFCC: one fixed audio front end


def memory_info(stepper: Stepper) -> dict:
    """The memory keys of ``extra_info``: the step peak and each module's, with their backend."""
    step = stepper.step_memory()
    return {"memory_backend": stepper.backend, "step_peak_bytes": stepper.step_peak(),
            "tracked_peak_bytes": step["tracked_peak_bytes"], "untracked_bytes": step["untracked_bytes"],
            "resident_bytes": step["resident_bytes"],
            "floor_bytes": step["floor_bytes"], "module_peak_bytes": stepper.module_peaks(),
            "module_names": list(stepper.network.names)}


@pytest.mark.parametrize("model,mode,modality,depth", CASES)
def test_training_step(benchmark, record_memory, model, mode, modality, depth):
    cfg = resolve_config(RunConfig(model=model, gim_mode=mode, modality=modality, depth=depth, probe=False))
    stepper = Stepper(cfg)
    stepper.warm_up()  # one cycle: lazy initialisation and every module's optimizer state
    stepper.track_memory(floor=True)
    info = memory_info(stepper)
    assert info["step_peak_bytes"] > 0 and all(p and p > 0 for p in info["module_peak_bytes"])
    record_memory(info)
    benchmark.group = f"{modality} depth {depth} ({cfg.preset}, {cfg.device})"
    benchmark.extra_info.update(info, method=method_name(model, mode), model=model, gim_mode=mode,
                                modality=modality, depth=depth, preset=cfg.preset, device=cfg.device,
                                batch_size=cfg.batch_size)
    benchmark(stepper.step)
