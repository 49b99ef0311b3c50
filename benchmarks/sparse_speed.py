"""GIM's step against CPC's, and this tree's against an older commit's, timed in one process, interleaved.

A shared or busy machine distorts wall-clock times, so alternatives are never timed in separate runs: every
variant is built here (an older commit's ``gimbench`` is imported beside this one as ``gimbench_old``), and the
variants take turns, one real training step each, for ``--repeats`` rounds; medians per (module, phase) and
per step, and the ratios of the medians, are printed as JSON. Issue 26's figures come from

    PYTHONPATH=. python benchmarks/sparse_speed.py --batch-size 8 --old 9993abf

(``--old`` adds the older commit's GIM, ``--local-grad auto sparse`` this tree's GIM under both settings).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent


def import_old(commit: str, folder: pathlib.Path):
    """The ``gimbench`` package of ``commit``, importable as ``gimbench_old`` beside this tree's."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "gimbench"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    package = folder / "gimbench_old"
    (folder / "gimbench").rename(package)
    for source in package.rglob("*.py"):
        text = re.sub(r"\bgimbench\b(?=[.\s])", "gimbench_old", source.read_text())
        source.write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module("gimbench_old")


class Variant:
    """One method's network, strategy and optimizers built by a ``gimbench`` package, stepped on one batch."""

    def __init__(self, package: str, model: str, batch_size: int | None, clock=time.perf_counter, **options) -> None:
        config = importlib.import_module(f"{package}.config")
        build = importlib.import_module(f"{package}.runs.build").build
        self.timing = importlib.import_module(f"{package}.profiling.timing").TimingMeter
        cfg = config.resolve(config.RunConfig(model=model, depth=6, batch_size=batch_size, device="cpu", steps=2,
                                              probe=False, **options))
        self.parts = build(cfg)
        x = self.parts.source.batch(cfg.batch_size, torch.Generator().manual_seed(0))
        self.x = x[0] if isinstance(x, tuple) else x
        self.clock = clock
        self.phases: list[dict] = []
        self.seconds: list[float] = []

    def step(self, timed: bool) -> None:
        """One training step; timed: per (module, phase) by the package's own timers, and as a whole."""
        meter = self.timing(torch.device("cpu"))
        meter._now = self.clock
        start = self.clock()
        with meter.step():
            self.parts.strategy.step(self.parts.network, self.parts.optimizers, self.x, meter, 0)
        if timed:
            self.seconds.append(self.clock() - start)
            self.phases.append(meter.steps[0])

    def summary(self) -> dict:
        """Median ms of the step and of each (module, phase), with the step's interquartile range."""
        q = statistics.quantiles(self.seconds, n=4) if len(self.seconds) > 1 else [self.seconds[0]] * 3
        keys = sorted({key for p in self.phases for key in p})
        return {"step_ms": 1e3 * statistics.median(self.seconds), "step_iqr_ms": 1e3 * (q[2] - q[0]),
                "phase_ms": {f"{k}.{phase}": 1e3 * statistics.median(p.get((k, phase), 0.0) for p in self.phases)
                             for k, phase in keys}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("paper", "tiny"), default="paper")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (each variant one step a round)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this process's CPU time, which other processes on a shared machine distort less")
    parser.add_argument("--local-grad", nargs="+", default=["auto"], help="this tree's GIM under each setting")
    parser.add_argument("--old", help="also time this commit's GIM (e.g. 9993abf: before issue 26)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    variants = {"cpc": Variant("gimbench", "cpc", args.batch_size, clock, preset=args.preset)}
    for setting in args.local_grad:
        variants[f"gim_{setting}"] = Variant("gimbench", "gim", args.batch_size, clock, preset=args.preset,
                                             local_grad=setting)
    with tempfile.TemporaryDirectory() as folder:
        if args.old:
            import_old(args.old, pathlib.Path(folder))
            variants["gim_old"] = Variant("gimbench_old", "gim", args.batch_size, clock, preset=args.preset)
        for v in variants.values():
            v.step(timed=False)  # warm-up: lazy initialisation, optimizer state
        for _ in range(args.repeats):
            for v in variants.values():
                v.step(timed=True)
    out = {name: v.summary() for name, v in variants.items()}
    gims = [f"gim_{setting}" for setting in args.local_grad]
    out["gim_over_cpc"] = {name: out[name]["step_ms"] / out["cpc"]["step_ms"] for name in gims}
    if args.old:
        out["gim_over_gim_old"] = {name: out[name]["step_ms"] / out["gim_old"]["step_ms"] for name in gims}
        out["loss_phase_over_gim_old"] = {name: {
            key: ms / out["gim_old"]["phase_ms"][key] for key, ms in out[name]["phase_ms"].items()
            if key.endswith(".loss") and key in out["gim_old"]["phase_ms"]} for name in gims}
    out["settings"] = {"preset": args.preset, "batch_size": args.batch_size, "repeats": args.repeats,
                       "threads": torch.get_num_threads(), "torch": torch.__version__, "old": args.old,
                       "clock": args.clock}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
