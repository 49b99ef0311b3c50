"""Valid files of every kind gimbench reads, and seeded random mutations of them (for tests/test_fuzz_inputs.py).

``make_world`` writes one real run folder (a tiny run, its results.json with a probe block and both
checkpoints), a sweep folder listing a copy of it as its complete run, and a pytest-benchmark JSON
(``tests/fixtures/bench-memory.json``, written by the suite in benchmarks/). ``mutate_json`` and
``mutate_checkpoint`` damage one copy.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import torch
from short_probes import short_probes

from gimbench.cli import make_parser
from gimbench.config import RunConfig
from gimbench.results.schema import write_json_atomic
from gimbench.runs import checkpoint
from gimbench.runs.run import run
from gimbench.sweep.grid import configurations
from gimbench.sweep.runner import SCHEMA, _summary, timing

BENCH = Path(__file__).parent / "fixtures" / "bench-memory.json"
SWEEP_ARGS = ["--preset", "tiny", "--device", "cpu", "--depth", "2", "--batch-size", "2", "--steps", "2",
              "--warmup-steps", "1", "--profile-steps", "1", "--memory-steps", "1", "--checkpoint-every", "1",
              "--no-probe"]
DEEP = "__deep__"  # stands for 200,000 nested lists, spliced into the text (json.dumps would recurse)
HUGE = "__huge__"  # stands for 1e400, which json.dumps cannot write
SWAPS = ["x", 7, -1, 0, 1.5, True, False, None, [], {}, [1, 2], {"a": 1}, 10**400, float("nan"), float("inf"),
         DEEP, HUGE]


def make_world(root: Path) -> dict[str, Path]:
    """A real run folder, a sweep folder holding a copy of it, and a benchmark JSON, under ``root``.

    The run is probed (readers of results.json meet a real probe block to damage), by short probes.
    """
    args = make_parser().parse_args(["sweep", *SWEEP_ARGS])
    config = configurations(args, args.run_options)[0][0]
    sweep = root / "sweep"
    with short_probes():
        run(_config(config.values, sweep / "runs", config.name))
    folder = sweep / "runs" / config.name
    doc = json.loads((folder / "results.json").read_text())
    record = {"name": config.name, "label": config.label, "options": config.values,
              "command": ["gimbench", "run", *config.argv], "folder": f"runs/{config.name}",
              "log": f"logs/{config.name}.log", "exit_code": 0, "wall_seconds": doc["wall_seconds"] + 2.0,
              "status": "complete", "error": None} | _summary(doc)
    (sweep / "logs").mkdir()
    (sweep / "logs" / f"{config.name}.log").write_text("")
    write_json_atomic(sweep / "sweep.json", {
        "schema": SCHEMA, "started": "2026-12-07T09:00:00+00:00", "command": ["gimbench", "sweep", *SWEEP_ARGS],
        "swept": {}, "runs": [record], "status": "complete", "pid": 1, "signal": None, "resume_command": None,
        **timing([record], record["wall_seconds"] + 1.0)})
    return {"run": folder, "sweep": sweep, "bench": BENCH}


def _config(values: dict, out: Path, name: str) -> RunConfig:
    known = {k: v for k, v in values.items() if k in RunConfig.__dataclass_fields__}
    return RunConfig(**known | {"out": str(out), "name": name, "quiet": True})


def _paths(node: object, at: tuple = ()) -> list[tuple]:
    """Every path into a JSON document (or a checkpoint's state), the root excluded."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found.append((*at, key))
        found += _paths(value, (*at, key))
    return found


def _set(document: object, path: tuple, value: object) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


def _delete(document: object, path: tuple) -> None:
    for key in path[:-1]:
        document = document[key]
    del document[path[-1]]


def _text(document: object) -> str:
    text = json.dumps(document)
    return text.replace(f'"{DEEP}"', "[" * 200_000 + "]" * 200_000).replace(f'"{HUGE}"', "1e400")


def _flip(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 64)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def mutate_json(path: Path, rng: random.Random) -> str:
    """Damage the JSON file at ``path`` one random way; what was done, in words."""
    raw = path.read_bytes()
    how = rng.choice(["swap", "swap", "swap", "delete", "delete", "flip", "truncate", "deep", "nest"])
    if how == "flip":
        path.write_bytes(_flip(raw, rng))
        return how
    if how == "truncate":
        path.write_bytes(raw[: rng.randrange(len(raw))])
        return how
    if how == "deep":
        path.write_text("[" * 200_000 + "]" * 200_000)
        return how
    document = json.loads(raw)
    at = rng.choice(_paths(document))
    if how == "delete" and isinstance(at[-1], str):
        _delete(document, at)
    else:
        how, value = "swap", rng.choice(SWAPS) if how != "nest" else DEEP
        _set(document, at, value)
    path.write_text(_text(document))
    return f"{how} {'.'.join(map(str, at))}"


TENSOR_SWAPS = [torch.zeros(3, 3), torch.zeros(0), torch.tensor(float("nan")), "x", 7, None, [], {}]


def mutate_checkpoint(path: Path, rng: random.Random) -> str:
    """Damage the checkpoint at ``path`` one random way: its bytes, or its contents re-saved as ``save`` would
    (right format, inconsistent or mistyped values)."""
    how = rng.choice(["flip", "truncate", "contents", "contents", "contents"])
    if how == "flip":
        path.write_bytes(_flip(path.read_bytes(), rng))
        return how
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: rng.randrange(path.stat().st_size)])
        return how
    state = torch.load(path, weights_only=True)
    at = rng.choice(_paths(state))
    if rng.random() < 0.3 and isinstance(at[-1], str):
        _delete(state, at)
        return f"delete {'.'.join(map(str, at))}"
    value = rng.choice(TENSOR_SWAPS + SWAPS[:12])
    _set(state, at, value)
    checkpoint.save(path.parent, {k: v for k, v in state.items() if k != "format"})
    shown = value if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return f"swap {'.'.join(map(str, at))} = {str(shown)[:30]}"


def fresh_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
