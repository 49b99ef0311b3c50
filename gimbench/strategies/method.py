"""What a method says about itself, as plain data: the ``--model`` registry and each variant's ``MethodSpec``.

A method is its gradient flow (a ``Strategy``: optimizers, ``step``, state); everything else about it is a frozen
description beside it: the options that apply, its modalities and depth, its schedule cycle, its loss and heads,
vision's context, the distributed engine that runs it on several processes and how an error names it.
``config.resolve``, the sweep, ``gimbench list``, the run's build, the distributed engines and the benchmark stepper
read these descriptions instead of comparing method names.

A variant whose modules are spread over processes (``spreads``) names its engine and has no strategy class here:
the engine of that name (``gimbench.distributed``) builds each rank's training object, so this package never
imports the distributed code and every variant is registered as soon as ``gimbench.strategies`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gimbench.registry import Registry

STRATEGIES = Registry("model")
HEADS = ("every", "top", "none")  # the modules a method puts loss heads on


def checks_nothing(cfg: Any, processes: int) -> None:
    """The default ``MethodSpec.check``: a method with no checks of its own."""


@dataclass(frozen=True)
class MethodSpec:
    """One trainable variant of a ``--model``, described.

    ``trains`` is the ``Strategy`` class made as ``trains(cfg, spec)`` for a run; ``None`` for a variant that
    ``spreads``, whose engine (named by ``engine``) makes it for each rank.
    """

    description: str
    trains: type | None = None
    encoder: str = "trained"  # "mfcc": the network is the fixed MFCC front end instead of the encoder
    loss: str = "infonce"  # what the heads compute: "infonce", or "classifier" on the batch's labels
    heads: str = "every"  # which modules carry a loss head (``HEADS``)
    options: tuple[str, ...] = ()  # RunConfig fields that apply to this variant only (beyond its method's choice)
    called: str = ""  # how an error says which runs its options apply to ("" : by the option that picks it)
    spreads: bool = False  # its modules are spread over processes: it needs 2 to depth of them
    modalities: tuple[str, ...] = ("audio", "vision")
    depth: int | None = None  # a fixed number of modules (the MFCC front end: 1); None: --depth
    vision_context: str = "none"  # vision's context network when --context is auto
    isolated: bool = False  # each module learns from its own loss alone (greedy schedules)
    in_turn: bool = False  # the schedule trains one module at a time, each for its share of the steps
    engine: str = "data-parallel"  # the distributed mode that runs it on several processes
    check: Callable[[Any, int], None] = field(default=checks_nothing)  # ConfigError for a resolved cfg on N processes

    def __post_init__(self) -> None:
        if self.heads not in HEADS:
            raise ValueError(f"heads must be one of {', '.join(HEADS)}, got {self.heads!r}")
        if (self.trains is None) != self.spreads:
            raise ValueError("a variant names its strategy class unless it spreads (its engine makes it)")

    @property
    def needs_labels(self) -> bool:
        """Whether training batches must come from a labelled split."""
        return self.loss == "classifier"

    def own_options(self) -> tuple[str, ...]:
        """``options``; where each module learns from its own loss alone, ``local_grad`` and the cut of the
        layers into modules (``modules``, ``split``); where the heads are classifiers, their kind (``local_head``)."""
        isolated = ("local_grad", "modules", "split") if self.isolated else ()
        return self.options + isolated + (("local_head",) if self.needs_labels else ())

    def cycle(self, depth: int) -> int:
        """Steps after which the schedule repeats (and the fewest a run needs to train every module)."""
        return depth if self.in_turn else 1

    def heads_on(self, depth: int) -> list[int]:
        """Indices of the modules (of ``depth``) that carry a loss head."""
        return {"every": list(range(depth)), "top": [depth - 1], "none": []}[self.heads]


@dataclass(frozen=True)
class Method:
    """A registered ``--model``: its variants by the value of the option that picks one (``choice``)."""

    description: str
    variants: dict[str, MethodSpec]
    choice: str | None = None  # the RunConfig field that picks the variant (``gim_mode``, ``pipeline``)

    @classmethod
    def single(cls, spec: MethodSpec) -> Method:
        return cls(spec.description, {"": spec})

    def variant(self, cfg) -> MethodSpec | None:
        """The variant ``cfg``'s option picks; ``None`` where it names none (a config not checked yet, which
        ``config.resolve`` refuses)."""
        return self.variants.get(getattr(cfg, self.choice) if self.choice else "")

    def options(self, cfg) -> tuple[str, ...]:
        """The RunConfig fields that apply to ``cfg``'s method and variant only."""
        spec = self.variant(cfg)
        return ((self.choice,) if self.choice else ()) + (spec.own_options() if spec else ())


def spec_of(cfg) -> MethodSpec:
    """The description of a checked config's ``--model`` and its variant option."""
    spec = STRATEGIES[cfg.model].variant(cfg)
    if spec is None:  # config.resolve refuses such a config before anything asks
        raise LookupError(f"--model {cfg.model} has no variant {getattr(cfg, STRATEGIES[cfg.model].choice)!r}")
    return spec
