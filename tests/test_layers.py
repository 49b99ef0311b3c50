"""The package's shape: imports run one way, the root stays small, registries fill themselves, and built parts are
never patched."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gimbench.config import RunConfig, resolve
from gimbench.distributed.engine import ENGINES
from gimbench.distributed.stages import Vacant
from gimbench.distributed.world import World
from gimbench.runs import run as run_module
from gimbench.runs.build import build
from gimbench.runs.run import resolve_config

PACKAGE = Path(__file__).resolve().parents[1] / "gimbench"
# The bottom layers never import the layers that run, spread or render runs.
LOW = ("gimbench.strategies", "gimbench.models", "gimbench.losses", "gimbench.profiling", "gimbench.data",
       "gimbench.config", "gimbench.errors", "gimbench.device", "gimbench.results")
HIGH = ("gimbench.distributed", "gimbench.runs", "gimbench.report", "gimbench.sweep", "gimbench.cli")


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports (anywhere in the file, inside functions too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*parts, base] if base else parts)
            out |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    # Importing ``a.b.c`` from outside ``a.b`` first runs the package ``a.b``: an ``__init__`` that imports back is
    # a cycle (``gimbench.probe`` -> ``gimbench.data.corpus`` ran ``gimbench.data``, which imported the probe).
    parents = {".".join(m.split(".")[:i]) for m in out for i in range(2, m.count(".") + 1)}
    out |= {p for p in parents if not name.startswith(p + ".")}
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_import_cycle_between_modules():
    edges = graph()

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    nested = lambda a, b: a.startswith(b + ".") or b.startswith(a + ".")  # noqa: E731  (a package and its own modules)
    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in reach(b) and not nested(a, b)})
    assert cycles == []


def test_bottom_layers_never_import_runs_distributed_or_reports():
    upward = sorted((a, b) for a, targets in graph().items() for b in targets
                    if a.startswith(LOW) and b.startswith(HIGH))
    assert upward == []


def test_strategies_and_config_never_load_the_distributed_package():
    # The spread variants are described in strategies/; the engines that train them are found by name.
    loaders = sorted(a for a, targets in graph().items() if a.startswith(("gimbench.strategies", "gimbench.config"))
                     and any(b.startswith("gimbench.distributed") for b in targets))
    assert loaders == []


def test_the_package_root_holds_at_most_eight_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(loose) <= 8, loose


def structure(parts) -> list:
    """What a run's parts are made of, by identity: every module of the network (heads included), the strategy,
    the source, every optimizer and the parameters it steps."""
    return [id(parts.network), [(name, id(m), type(m)) for name, m in parts.network.named_modules()],
            id(parts.strategy), id(parts.source),
            [None if o is None else (id(o), [id(p) for g in o.param_groups for p in g["params"]])
             for o in parts.optimizers]]


@pytest.mark.parametrize("options", [dict(model="gim", gim_mode="sequential"), dict(model="cpc")],
                         ids=["gim-sequential", "cpc"])
def test_a_run_trains_the_parts_it_built_untouched(tmp_path, monkeypatch, options):
    """Built once: the trainer holds exactly the parts ``build`` made, nothing is swapped in while the run trains,
    measures the floor, checkpoints and writes, and the profiler keeps what it was constructed with."""
    built, constructed = [], []

    def recording(*args, **kwargs):
        parts = build(*args, **kwargs)
        built.append((parts, structure(parts)))
        return parts

    def started(cfg, folder):
        profiler = run.session.profiler
        constructed.append({f.name: getattr(profiler, f.name) for f in dataclasses.fields(profiler) if f.init})

    monkeypatch.setattr(run_module, "build", recording)
    cfg = RunConfig(**options, preset="tiny", device="cpu", depth=3, steps=4, warmup_steps=1, profile_steps=1,
                    memory_steps=1, batch_size=4, probe=False, quiet=True, out=str(tmp_path))
    run = run_module.Run(run_module.resolve_config(cfg), run_module.Listeners(on_start=started))
    result = run.execute()
    [(parts, before)] = built
    trainer, profiler = run.session.trainer, run.session.profiler
    assert result.status == "complete" and trainer.step == 4
    assert trainer.parts is parts and structure(trainer.parts) == before
    now = {f.name: getattr(profiler, f.name) for f in dataclasses.fields(profiler) if f.init}
    assert constructed == [now] and all(now[k] is v for k, v in constructed[0].items())
    assert profiler.measure_floor is not None and profiler.floor() is not None  # the floor was measured


def test_the_structure_check_sees_a_swapped_part():
    """The check above can fail: a module swapped into the network, or an optimizer remade, changes it."""
    parts = build(resolve_config(RunConfig(model="gim", preset="tiny", device="cpu", depth=2, steps=1)))
    before = structure(parts)
    parts.network.encoder[1] = torch.nn.Identity()
    assert structure(parts) != before
    parts = build(resolve_config(RunConfig(model="gim", preset="tiny", device="cpu", depth=2, steps=1)))
    before = structure(parts)
    parts.optimizers[0] = torch.optim.Adam(parts.network.owned_parameters(0))
    assert structure(parts) != before


def test_a_rank_of_a_spread_run_builds_its_own_share():
    """Module-parallel rank 1 of 2: its network holds only its own module, with the parameters a single process
    starts from, its strategy is made for it, and only its module has an optimizer."""
    options = dict(model="gim", preset="tiny", device="cpu", depth=3, steps=2)
    cfg = resolve(RunConfig(**options, gim_mode="module-parallel", split_ranks="count"), 2)
    parts = ENGINES["module-parallel"]().parts(cfg, World(rank=1, size=2), build)
    whole = build(resolve(RunConfig(**options, gim_mode="per-module")))
    assert parts.strategy.owned == [2] and parts.strategy.groups == [[0, 1], [2]]
    assert [isinstance(m, Vacant) for m in parts.network.encoder] == [True, True, False]
    assert [o is not None for o in parts.optimizers] == [False, False, True]
    share, full = parts.network.state_dict(), whole.network.state_dict()
    assert share.keys() == {k for k in full if k.startswith(("encoder.2.", "heads.2."))}
    assert all(torch.equal(v, full[k]) for k, v in share.items() if isinstance(v, torch.Tensor))


@pytest.mark.slow  # a fresh interpreter
@pytest.mark.slow
def test_importing_the_losses_loads_no_run_report_or_rich():
    """Every registry is filled by its own package, so a submodule loads alone (a fresh interpreter); and the
    command's modules do not load torchvision (a second of every process's start) before a network is built."""
    code = ("import sys, gimbench.losses\n"
            "print(sorted(m for m in sys.modules if m.startswith(('rich', 'gimbench'))))\n"
            "import gimbench.cli, gimbench.runs.run\n"
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)}).stdout.splitlines()
    assert ast.literal_eval(out[0]) == ["gimbench", "gimbench.losses"] and out[1] == "False"


@pytest.mark.slow  # a fresh interpreter
@pytest.mark.slow
def test_the_spread_variants_are_registered_with_their_engines_without_loading_them():
    """The variants trained by gimbench.distributed are choices as soon as gimbench.strategies is imported, and
    their engines are there as soon as gimbench.distributed is."""
    code = ("import sys, gimbench.strategies as s\n"
            "print([list(s.STRATEGIES['gim'].variants), list(s.STRATEGIES['cpc'].variants),"
            " 'gimbench.distributed' in sys.modules])\n"
            "from gimbench.distributed.engine import ENGINES\n"
            "print(sorted(ENGINES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)}).stdout.splitlines()
    assert ast.literal_eval(out[0]) == [["per-module", "summed", "sequential", "module-parallel"],
                                        ["none", "gpipe", "1f1b"], False]
    assert ast.literal_eval(out[1]) == ["data-parallel", "module-parallel", "pipeline-1f1b", "pipeline-gpipe"]
