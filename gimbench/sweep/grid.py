"""The configurations of a sweep: every ``gimbench run`` option takes a comma list; their product.

Options that mean nothing for a configuration are dropped from it, so no run is repeated for them:
``--gim-mode`` applies to ``--model gim`` only, ``--context`` to ``--modality vision`` only, and
``--depth`` not to ``--model mfcc`` (one module), ``--max-inflight`` to ``--gim-mode module-parallel`` only,
``--pipeline`` to ``--model cpc`` only and ``--micro-batches`` to a pipelined cpc only. So ``--model gim,cpc
--gim-mode module-parallel --pipeline gpipe,1f1b --nproc 2`` is the locking comparison's three runs. Likewise
``--modules`` and ``--split`` apply to greedy methods only and ``--accumulate`` to end-to-end ones (``--model
gim,cpc --modules 1,2,3,6`` is five runs). A switch (``--checkpoint-activations``) is passed to every run, so it
cannot be swept against its absence: ``gimbench compare`` runs that comparison.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

from gimbench.config import ConfigError, RunConfig, applies, config_from, modality_of
from gimbench.strategies import STRATEGIES

# The sweep's own meaning of these run options: --out is the sweep folder, --name names it.
SWEEP_LEVEL = ("out", "name")
# Passed to every run the sweep's way: runs are always quiet, and --overwrite is about the sweep folder.
NOT_PASSED = ("quiet", "overwrite")


def _exists(values: dict) -> bool:
    """Whether the configuration's method exists for its modality (the MFCC baseline is audio only)."""
    cfg = config_from(values)
    method = STRATEGIES.get(cfg.model)
    variant = method.variant(cfg) if method else None
    return variant is None or modality_of(cfg) in variant.modalities


@dataclass(frozen=True)
class Configuration:
    """One run of a sweep: its option values by dest, the flags that pass them, and a short name."""

    values: dict
    argv: list[str]
    label: str
    index: int

    @property
    def name(self) -> str:
        """The run folder's name: index and label."""
        return f"{self.index:03d}-{self.label}"


def accept_lists(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Make every value option of ``parser`` (``RunConfig``'s, from ``add_run_options``) take a comma list.

    Returns the run options by dest: value options as they were (type and choices, to check each item),
    switches (``--no-probe``, ...) as they are.
    """
    options = {}
    for action in parser._actions:
        if not action.option_strings or action.dest in (*SWEEP_LEVEL, "help"):
            continue
        options[action.dest] = copy.copy(action) if action.nargs is None else action
        if action.nargs is None:
            of = f" of {','.join(map(str, action.choices))}" if action.choices else ""
            action.help = f"{action.help} (a comma list{of} sweeps it)"
            action.type, action.choices, action.metavar = None, None, action.metavar or action.dest.upper()
    return options


def _convert(action: argparse.Action, text: str):
    flag = action.option_strings[0]
    try:
        value = action.type(text) if action.type else text
    except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
        kind = getattr(action.type, "__name__", "value")
        raise ConfigError(f"{flag}: {text!r} is not a valid {kind} ({e})") from None
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{flag}: {text!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def option_values(args: argparse.Namespace, actions: dict[str, argparse.Action]) -> dict[str, list[tuple]]:
    """Every value option's values as (text as given, value), a comma list converted and checked item by
    item; an option not given is the one pair (None, its RunConfig default)."""
    values = {}
    for dest, action in actions.items():
        if action.nargs == 0:
            continue
        if not hasattr(args, dest):  # the parser holds no defaults: this one was not given
            values[dest] = [(None, getattr(RunConfig, dest))]
            continue
        raw = getattr(args, dest)
        items = [item.strip() for item in raw.split(",")]
        if "" in items:
            raise ConfigError(f"{action.option_strings[0]} {raw!r}: an empty item in the comma list")
        first = {}
        for item in items:
            first.setdefault(_convert(action, item), item)
        values[dest] = [(text, value) for value, text in first.items()]
    return values


def _label(config: dict, swept: list[str], actions: dict[str, argparse.Action]) -> str:
    """The swept values that apply, e.g. ``gim-summed-depth4``: choices bare, numbers after their option."""
    parts = [str(config[d]) if actions[d].choices else f"{d.replace('_', '-')}{config[d]}"
             for d in sorted(swept, key=lambda d: d not in ("model", "gim_mode"))
             if config.get(d) is not None and applies(d, config_from(config))]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(parts) or "run")


def configurations(
    args: argparse.Namespace, actions: dict[str, argparse.Action],
) -> tuple[list[Configuration], dict[str, list]]:
    """Every distinct configuration (the product of the option lists, options that do not apply
    dropped), and the swept options with their values."""
    values = option_values(args, actions)
    swept = [d for d, v in values.items() if len(v) > 1]
    flags = {d: actions[d].option_strings[0] for d in values}
    switches = [a.option_strings[0] for a in actions.values()
                if a.nargs == 0 and a.dest not in NOT_PASSED and hasattr(args, a.dest)]
    seen, result, missing = set(), [], []
    for combo in itertools.product(*values.values()):
        chosen = dict(zip(values, combo, strict=True))
        given = {d: v for d, (_, v) in chosen.items()}
        cfg = config_from(given)
        meant = {d: applies(d, cfg) for d in chosen}
        config = {d: v if meant[d] else getattr(RunConfig, d) for d, v in given.items()}
        if tuple(config.items()) in seen:
            continue
        seen.add(tuple(config.items()))
        # Only options given on the command line are passed, as typed: the run parses them itself.
        argv = [x for d, (text, _) in chosen.items() if text is not None and meant[d] for x in (flags[d], text)]
        found = Configuration(config, argv + switches, _label(config, swept, actions), len(result) + 1)
        (result if _exists(config) else missing).append(found)
    return result or missing, {d: [v for _, v in values[d]] for d in swept}


def validate(configs: list[Configuration], check: Callable[[dict], object]) -> None:
    """``check`` every configuration's values before anything runs; the first ``ConfigError`` names it."""
    for config in configs:
        try:
            check(config.values)
        except ConfigError as e:
            raise ConfigError(f"{e} (sweep configuration {config.label})") from None
