"""What every strategy provides and says about itself, and the registry the CLI's ``--model`` choices come from.

A strategy class describes itself (which options apply to it, its schedule cycle, whether it spreads modules
over processes, which modalities and depth it allows); ``config.resolve``, the sweep, the distributed engines
and the benchmark stepper read these descriptions instead of comparing method names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gimbench.models import Network, sequence_lengths
from gimbench.profiling.meter import Meter
from gimbench.registry import Registry
from gimbench.strategies.sparse import forward_loss, local_grad_modes

STRATEGIES = Registry("model")


class Strategy:
    """Decides where losses sit and how gradients flow through a ``Network``.

    Optimizers are one Adam per owning module (module + its head). Adam is elementwise, so this
    is the same update as one Adam over all parameters; it lets every method report optimizer
    work per module.
    """

    description = ""
    encoder = "trained"  # "mfcc": the network is the fixed MFCC front end instead of the encoder
    loss = "infonce"  # what the heads compute: "infonce", or "classifier" on the batch's labels
    options: tuple[str, ...] = ()  # RunConfig fields that apply to this strategy only (beyond its method's choice)
    called = ""  # how an error says which runs its options apply to ("" : by the option that picks it)
    spreads = False  # its modules are spread over processes: it needs 2 to depth of them
    modalities: tuple[str, ...] = ("audio", "vision")
    depth: int | None = None  # a fixed number of modules (the MFCC front end: 1); None: --depth
    vision_context = "none"  # vision's context network when --context is auto
    isolated = False  # True where each module learns from its own loss alone (greedy schedules)

    def __init__(self, cfg) -> None:
        self.cfg = cfg  # a resolved RunConfig

    @property
    def needs_labels(self) -> bool:
        """Whether training batches must come from a labelled split."""
        return self.loss == "classifier"

    @classmethod
    def own_options(cls) -> tuple[str, ...]:
        """``options``, and where each module learns from its own loss alone ``local_grad`` and the cut of the
        layers into modules (``modules``, ``split``)."""
        return cls.options + (("local_grad", "modules", "split") if cls.isolated else ())

    @classmethod
    def cycle(cls, depth: int) -> int:
        """Steps after which the schedule repeats (and the fewest a run needs to train every module)."""
        return 1

    @classmethod
    def engine(cls, cfg) -> str:
        """The distributed mode that runs it on several processes (``gimbench.distributed`` engines)."""
        return "data-parallel"

    @classmethod
    def check(cls, cfg, processes: int) -> None:
        """``ConfigError`` for options of a resolved ``cfg`` this strategy cannot run with on ``processes``."""

    def heads_on(self, depth: int) -> list[int]:
        """Indices of the modules that carry a loss head."""
        return list(range(depth))

    def local(self, network: Network) -> Network:
        """The part of ``network`` this process trains: all of it, unless the strategy spreads modules over
        processes (then the others are freed here)."""
        return network

    def make_optimizers(self, network: Network) -> list[torch.optim.Optimizer | None]:
        """One optimizer per module, ``None`` for a module with nothing to train."""
        return [_adam(list(network.owned_parameters(k)), self.cfg.lr) for k in range(len(network))]

    def step(
        self, network: Network, optimizers: list, x: torch.Tensor, meter: Meter, step: int,
        labels: torch.Tensor | None = None,
    ) -> list[torch.Tensor | None]:
        """Train on one batch; returns each module's detached loss, ``None`` where none was computed."""
        raise NotImplementedError

    def local_grads(self, network: Network) -> list[str]:
        """Per module, "sparse" or "dense" local gradients (``--local-grad``, see ``strategies/sparse.py``)."""
        setting = self.cfg.local_grad if self.isolated else "dense"
        return local_grad_modes(network, setting, sequence_lengths(self.cfg.preset, len(network)))

    def trained_at(self, step: int, depth: int) -> tuple[int, ...]:
        """The modules that ``step`` trains (every one, unless the schedule takes them in turn)."""
        return tuple(range(depth))

    def train_alone(
        self, network: Network, k: int, h: torch.Tensor, optimizer, meter: Meter, labels: torch.Tensor | None = None
    ) -> None:
        """Module k trained by itself on its input ``h``, as the greedy floor measures it: forward, its
        local loss (or, without a head, a dense gradient arriving at its output, as end-to-end backprop
        delivers one), backward and optimizer step."""
        if network.head(k) is not None:
            train_module(network, k, h, optimizer, meter, labels, self.local_grads(network)[k])
            return
        with meter.phase(k, "forward"):
            z = network.encoder[k](h)
        with meter.phase(k, "backward"):
            z.backward(torch.ones_like(z))
        with meter.phase(k, "optimizer"):
            optimizer_step(optimizer)

    def state(self) -> dict:
        """Strategy state worth recording (e.g. which module is being trained); checkpoints hold it."""
        return {}

    def load_state(self, state: dict) -> None:
        """Continue from what ``state()`` returned in an earlier session."""


def _adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer | None:
    return torch.optim.Adam(params, lr=lr) if params else None


def optimizer_step(optimizer: torch.optim.Optimizer | None) -> None:
    """Apply and clear the gradients of one module."""
    if optimizer is not None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def train_module(
    network: Network, k: int, h: torch.Tensor, optimizer, meter: Meter, labels: torch.Tensor | None = None,
    mode: str = "dense",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, local loss, backward and optimizer step of module k on input ``h``, with ``mode`` ("dense" or
    "sparse") local gradients; returns its detached output (the next module's input) and its detached loss."""
    z, loss = forward_loss(network, k, h, meter, labels, mode)
    with meter.phase(k, "backward"):
        loss.backward()
    with meter.phase(k, "optimizer"):
        optimizer_step(optimizer)
    return z.detach(), loss.detach()  # the boundary: module k's graph is freed here


@dataclass(frozen=True)
class Method:
    """A registered ``--model``: its strategy, or its variants and the option that picks one of them."""

    description: str
    variants: dict[str, type[Strategy]] = field(default_factory=dict)  # by the value of ``choice``
    choice: str | None = None  # the RunConfig field that picks the variant (``gim_mode``, ``pipeline``)

    @classmethod
    def single(cls, strategy: type[Strategy]) -> Method:
        return cls(strategy.description, {"": strategy})

    def add(self, value: str, strategy: type[Strategy]) -> None:
        """Register one more variant (``gimbench.distributed`` adds the ones that spread over processes)."""
        if value in self.variants:
            raise KeyError(f"{self.choice} {value!r} is registered twice")
        self.variants[value] = strategy

    def variant(self, cfg) -> type[Strategy]:
        """The strategy class that trains ``cfg``."""
        return self.variants[getattr(cfg, self.choice) if self.choice else ""]

    def options(self, cfg) -> tuple[str, ...]:
        """The RunConfig fields that apply to ``cfg``'s method and variant only."""
        return ((self.choice,) if self.choice else ()) + self.variant(cfg).own_options()


def strategy_class(cfg) -> type[Strategy]:
    """The strategy class of a config's ``--model`` and its variant option."""
    return STRATEGIES[cfg.model].variant(cfg)


def make_strategy(cfg) -> Strategy:
    """The registered strategy for a resolved config."""
    return strategy_class(cfg)(cfg)
