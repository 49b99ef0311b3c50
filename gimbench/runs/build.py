"""A run's parts, built once from a resolved config: used by a run, a resume, ``gimbench probe``, the benchmark
stepper and the batch-size search alike; under torchrun each rank builds its own share."""

from __future__ import annotations

import torch

from gimbench.config import ConfigError, RunConfig, module_count
from gimbench.data import Source, make_source
from gimbench.distributed.stages import rank_share
from gimbench.models import Network, network_entry
from gimbench.runs.split import module_layers
from gimbench.strategies import MethodSpec, Strategy, spec_of
from gimbench.strategies.heads import build_network
from gimbench.trainer import Parts


def network_for(cfg: RunConfig, spec: MethodSpec, classes: int = 0,
                groups: list[list[int]] | None = None) -> Network:
    """The network of a resolved config (its registered ``network``) with the heads its method's description puts
    on it, initialised from the seed; ``classes`` is the number of training labels, used by supervised methods'
    heads; ``groups`` the layers of each module (``--modules``: ``module_layers``; ``None``: one module per layer)."""
    torch.manual_seed(cfg.seed)
    return build_network(
        network=cfg.network, preset=cfg.preset, depth=cfg.depth, heads_on=spec.heads_on(module_count(cfg)),
        context=cfg.context, classes=classes if spec.needs_labels else 0, groups=groups, local_head=cfg.local_head,
    )


def check_input(cfg: RunConfig, source: Source) -> None:
    """A dataset whose examples the network cannot read is one line before anything is built from it (one example
    drawn with a generator of its own: the run's draws stay the run's)."""
    wanted = network_entry(cfg.network).input_of(cfg.preset)
    try:
        got = tuple(source.batch(1, torch.Generator().manual_seed(cfg.seed)).inputs.shape[1:])
    except ValueError as e:  # a crop the data cannot give (an audio input longer than its utterances)
        raise ConfigError(f"--data {cfg.data} cannot give network {cfg.network!r} its input {wanted}: {e}") from None
    if got != wanted:
        raise ConfigError(f"--data {cfg.data} hands out examples of shape {got}; network {cfg.network!r} reads "
                          f"{wanted}")


def build(cfg: RunConfig, device: torch.device | None = None, *, strategy: Strategy | None = None,
          owned: list[int] | None = None) -> Parts:
    """Strategy, source, network (on ``device``, by default the config's) and one optimizer per module.

    A distributed engine that spreads modules over ranks hands in this rank's ``strategy`` and the modules it
    ``owned``: the whole network is built from the seed as one process builds it (so the initial parameters are
    the same), and this rank's network holds only its own modules. By default the method's own strategy trains
    every module.

    Gathering negatives backpropagates through an accumulating index_put, which multithreaded CPU kernels sum
    in varying order; deterministic kernels make a seed reproduce the same parameters on the CPU. Deterministic
    mode would also fill every new tensor's memory before use (a check for code that reads it uninitialised,
    which none here does); that costs a write of every allocation, over 100,000 small ones per paper-preset GIM
    step in batched matmuls' backward, so it is turned off: the values computed are the same.
    """
    device = torch.device(cfg.device) if device is None else device
    torch.use_deterministic_algorithms(device.type == "cpu")
    torch.utils.deterministic.fill_uninitialized_memory = False
    spec = spec_of(cfg)
    # A variant spread over ranks is trained by its engine's strategy only; built outside one (its saved run
    # probed) it gets the plain Strategy, which makes optimizers and never steps.
    strategy = strategy or (spec.trains or Strategy)(cfg, spec)
    source = make_source(cfg, labelled=spec.needs_labels)
    check_input(cfg, source)
    groups = module_layers(cfg, spec, source.num_classes,
                           lambda: source.batch(cfg.batch_size, torch.Generator().manual_seed(cfg.seed)), device)
    network = network_for(cfg, spec, source.num_classes, groups)
    if owned is not None:
        network = rank_share(network, owned)
    network = network.to(device)
    return Parts(network, strategy, source, strategy.make_optimizers(network), device)
