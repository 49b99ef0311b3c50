"""``gimbench compare``: gradient isolation against the memory savers engineers use anyway, on one setting.

One run per row and round, each in a fresh process by the sweep runner (so every memory peak is clean), all with the
same data, seed, batch, steps and network: plain ``cpc``, ``cpc --checkpoint-activations``, ``cpc --accumulate
2`` and ``4``, ``gim`` (per-module) at ``--modules`` 2, 3 and one per layer (those that the depth allows,
each once), and ``cpc`` and ``gim`` in bf16 (``--precision bf16``) and with SGD (``--optimizer sgd``). Vision
runs use ``--context none`` unless ``--context`` is given, so every row trains the same encoder with the same
InfoNCE head on its top (CPC's default PixelCNN is a bigger network, not a schedule).
The rows run in ``ROUNDS`` rounds by default, every other one in reverse order (``in_rounds``); the rounds after
the first only time the rows, so they train without probes or memory-tracked steps (``TIMING_ONLY``).
The runs' report (``gimbench report`` of the folder) goes into ``report/``: its first section sets every row
against plain CPC.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from gimbench.config import ConfigError, RunConfig, config_from, flag, modality_of
from gimbench.sweep.grid import NOT_PASSED, SWEEP_LEVEL, Configuration

# What the rows set; the same options given to ``gimbench compare`` are refused, naming the flag.
VARIED = ("model", "checkpoint_activations", "accumulate", "modules", "split", "gim_mode", "pipeline", "precision",
          "optimizer")
# The arithmetic and the optimizer engineers try first, each a row for cpc and for gim (one module per layer).
LIGHTER = (("bf16", {"precision": "bf16"}), ("sgd", {"optimizer": "sgd"}))
COMPARED_MODULES = (2, 3)  # besides one module per layer
ROUNDS = 2  # the rows in one order, then in the reverse one (``--rounds``)
# What the rounds after the first change: they time the rows again at the cost of their training steps alone; the
# memory figures and the accuracy come from the first round.
TIMING_ONLY = {"probe": False, "memory_steps": 0}
ROUND = re.compile(r"-r(\d+)$")  # the suffix of a later round's label: ``cpc-r2``


def rows(depth: int) -> list[tuple[str, dict]]:
    """(label, the options it sets) of every row for a network of ``depth`` layers."""
    savers = [("cpc", {"model": "cpc"}), ("cpc-checkpoint", {"model": "cpc", "checkpoint_activations": True}),
              *((f"cpc-accumulate{m}", {"model": "cpc", "accumulate": m}) for m in (2, 4))]
    cuts = sorted({k for k in COMPARED_MODULES if k < depth})
    greedy = [(f"gim-modules{k}", {"model": "gim", "modules": k}) for k in cuts]
    lighter = [(f"{model}-{label}", {"model": model} | own) for model in ("cpc", "gim") for label, own in LIGHTER]
    return savers + [*greedy, (f"gim-modules{depth}", {"model": "gim"}), *lighter]


def refused(given: Collection[str]) -> str | None:
    """The error line for an option ``gimbench compare`` sets itself, or ``None``."""
    for dest in VARIED:
        if dest in given:
            return f"{flag(dest)} does not apply: gimbench compare sets it per row (docs/compare.md); drop it"
    return None


def argv_of(values: dict) -> list[str]:
    """Command-line flags that give ``values`` (RunConfig fields) to ``gimbench run``."""
    argv: list[str] = []
    for dest, value in values.items():
        if isinstance(value, bool):
            argv += [flag(dest)] if value != getattr(RunConfig, dest) else []
        else:
            argv += [flag(dest), str(value)]
    return argv


def in_rounds(found: list[tuple[str, dict]], rounds: int) -> list[tuple[str, dict]]:
    """The rows ``rounds`` times, every other round in reverse order (``-r2`` ... after the label): a load that
    drifts over the comparison slows the first rows of one round and the last of the next, so no row gains from
    it in their mean, and a row whose rounds disagree shows as too noisy to rank (``gimbench.report.noise``).
    The later rounds are ``TIMING_ONLY``: their rows' memory and accuracy were measured in the first."""
    ordered = []
    for r in range(1, rounds + 1):
        this = found if r % 2 else found[::-1]
        ordered += [(label, own) if r == 1 else (f"{label}-r{r}", own | TIMING_ONLY) for label, own in this]
    return ordered


def row_of(label: str) -> str:
    """The row a run's label belongs to, without its round: ``cpc-r2`` is a round of ``cpc``."""
    return ROUND.sub("", label)


def chosen(found: list[tuple[str, dict]], only: Collection[str] | None, depth: int) -> list[tuple[str, dict]]:
    """The rows named in ``only`` (``--rows``; every row where ``None``), in the comparison's order; cpc, the
    baseline every row is read against, among them."""
    if only is None:
        return found
    labels = [label for label, _ in found]
    unknown = [name for name in only if name not in labels]
    if unknown:
        raise ConfigError(f"--rows: no row {unknown[0]!r} at depth {depth}; the rows are {', '.join(labels)}")
    if "cpc" not in only:
        raise ConfigError("--rows must include cpc: every row is compared with it")
    return [(label, own) for label, own in found if label in only]


def configurations(base: dict, given: Collection[str], depth: int, rounds: int = ROUNDS,
                   only: Collection[str] | None = None) -> list[Configuration]:
    """The compared runs: ``base`` (every RunConfig field) with the options ``given`` passed to every row, and
    each row's own; the rows (those ``only`` names, ``chosen``) ``rounds`` times (``in_rounds``)."""
    shared = {d: v for d, v in base.items() if d in given and d not in SWEEP_LEVEL + NOT_PASSED}
    if modality_of(config_from(base)) == "vision" and "context" not in given:
        shared["context"] = "none"
    found = []
    for i, (label, own) in enumerate(in_rounds(chosen(rows(depth), only, depth), rounds), 1):
        values = base | shared | own
        found.append(Configuration(values, argv_of(shared | own), label, i))
    return found

