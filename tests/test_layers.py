"""The package's shape: imports run one way, the root stays small, and built parts are never patched."""

from __future__ import annotations

import ast
from pathlib import Path

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
    # The distributed package registers its own strategies when the runner loads it.
    loaders = sorted(a for a, targets in graph().items() if a.startswith(("gimbench.strategies", "gimbench.config"))
                     and any(b.startswith("gimbench.distributed") for b in targets))
    assert loaders == []


def test_the_package_root_holds_at_most_eight_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(loose) <= 8, loose


# Names under which code outside their classes holds a trainer, a strategy or a loss head.
HELD = ("trainer", "strategy", "head", "heads")


def patched_attributes() -> list[str]:
    """``x.attr = ...`` anywhere in the package where ``x`` names a trainer, strategy or head held from outside
    (``self.trainer.attr``, ``strategy.attr``, ``network.head(k).attr``), not ``self.attr`` in the class itself."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
            for target in targets:
                for part in ast.walk(target):
                    if not isinstance(part, ast.Attribute) or part is not target:
                        continue
                    owner = part.value
                    name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(
                        owner, ast.Name) else owner.func.attr if isinstance(owner, ast.Call) and isinstance(
                        owner.func, ast.Attribute) else ""
                    if name in HELD:
                        found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {ast.unparse(target)}")
    return found


def test_no_trainer_strategy_or_head_is_patched_from_outside():
    assert patched_attributes() == []


def test_the_patch_finder_finds_patches(tmp_path, monkeypatch):
    """The check above can fail: a module that patches a trainer and a head is caught."""
    package = tmp_path / "gimbench"
    package.mkdir()
    (package / "bad.py").write_text("def f(run, network):\n    run.trainer.meter_for = None\n"
                                    "    network.head(0).batch_group = 1\n    strategy.local_stop += 1\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", package)
    assert len(patched_attributes()) == 3
