"""Your own network: ``--network path/to/file.py:make`` or ``--network package.module:make``, where ``make()``
returns the layers (a list of modules or an ``nn.Sequential``) and the shape of one input example without the
batch: ``(1, samples)`` for audio, ``(channels, height, width)`` for images. The shape says the modality.

The entry is made when the name is first looked up (``network_entry``) and kept for the process; every build calls
``make()`` again, after the run seeded torch's RNG, so a seed gives the same initial parameters. ``--depth N`` keeps
the first N layers. Whatever is wrong with it is one ``ConfigError`` line naming it: the file or module, the
function, what it returned, or the layer whose output is not a tensor.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from gimbench.errors import ConfigError, one_line
from gimbench.models.networks import NETWORKS, Layers, NetworkEntry, meta_output

USER_SPEC = re.compile(r"(?P<where>.+):(?P<function>[A-Za-z_]\w*)")
LOADED: dict[str, NetworkEntry] = {}  # user networks by the name they were given as, for this process
Make = Callable[[], object]


def network_entry(name: str) -> NetworkEntry:
    """The registered network ``name``, or the user network it names (made on first use), or ``ConfigError``."""
    if name in NETWORKS:
        return NETWORKS[name]
    if name not in LOADED:
        found = USER_SPEC.fullmatch(name)
        if found is None:
            raise ConfigError(f"--network: {name!r} is not one of {', '.join(sorted(NETWORKS))}, nor your own as "
                              "path/to/file.py:make or package.module:make")
        LOADED[name] = user_entry(name, load(name, found["where"], found["function"]))
    return LOADED[name]


def register_make(make: Make) -> str:
    """Make ``make`` a user network of this process (``gimbench.run(cfg, network=make)``); returns its name,
    ``module:function``, which other processes (``--nproc``) import it by."""
    name = f"{make.__module__}:{make.__qualname__}"
    LOADED[name] = user_entry(name, make)
    return name


def load(name: str, where: str, function: str) -> Make:
    """The function ``function`` of the Python file or the importable module ``where``."""
    try:
        module = load_file(Path(where)) if where.endswith(".py") else importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as e:  # the user's module failed on import: its own error, in one line
        raise ConfigError(f"--network {name}: cannot import {where} ({one_line(e)})") from None
    make = getattr(module, function, None)
    if not callable(make):
        raise ConfigError(f"--network {name}: {where} has no function {function}")
    return make


def load_file(path: Path) -> object:
    """The module of a Python file, imported under its own name (once per process)."""
    if not path.is_file():
        raise ConfigError(f"--network: no such file {path}")
    key = f"gimbench_user_network_{abs(hash(str(path.resolve())))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[key]
            raise
    return sys.modules[key]


def user_entry(name: str, make: Make) -> NetworkEntry:
    """The registry entry of ``make``: its modality and depth from one call, under a forked RNG (the run's draws
    stay the run's)."""
    with torch.random.fork_rng(devices=[]):
        layers = made(name, make)
    modality = "audio" if len(layers.input_shape) == 2 else "vision"
    count, shape = len(layers.modules), layers.input_shape
    return NetworkEntry(partial(made, name, make), modality, count, count, input_shape=lambda preset: shape)


def made(name: str, make: Make, preset: str = "tiny", depth: int | None = None) -> Layers:
    """``make()``'s first ``depth`` layers (all by default), checked: layers, an input shape, tensor outputs.
    The preset is not the network's business: it decides its own sizes."""
    try:
        returned = make()
    except Exception as e:
        raise ConfigError(f"--network {name}: make() failed ({one_line(e)})") from None
    layers, shape = unpack(name, returned)
    built = Layers(layers[:depth], layer_names(returned[0], len(layers))[:depth], shape)
    trace(name, built)
    return built


def unpack(name: str, returned: object) -> tuple[list[nn.Module], tuple[int, ...]]:
    """The layers and input shape ``make()`` returned, or ``ConfigError`` saying what it returned instead."""
    if not (isinstance(returned, tuple) and len(returned) == 2):
        raise ConfigError(f"--network {name}: make() must return (layers, input_shape), got {type(returned).__name__}")
    layers, shape = returned
    if isinstance(layers, nn.Sequential):
        layers = list(layers)
    if not isinstance(layers, list | tuple) or not layers or not all(isinstance(m, nn.Module) for m in layers):
        raise ConfigError(f"--network {name}: make()'s layers must be a non-empty list of nn.Module or an "
                          f"nn.Sequential, got {type(layers).__name__}")
    if not (isinstance(shape, tuple | list | torch.Size) and len(shape) in (2, 3)
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise ConfigError(f"--network {name}: make()'s input shape must be (1, samples) for audio or (channels, "
                          f"height, width) for images, got {shape!r}")
    if len(shape) == 2 and shape[0] != 1:
        raise ConfigError(f"--network {name}: an audio input is (1, samples), got {tuple(shape)}")
    return list(layers), tuple(shape)


def layer_names(layers: object, count: int) -> list[str]:
    """An ``nn.Sequential``'s own child names where it named them, else layer1, layer2 ... (as for a list)."""
    given = [name for name, _ in layers.named_children()] if isinstance(layers, nn.Sequential) else [""] * count
    return [name if name and not name.isdigit() else f"layer{i + 1}" for i, name in enumerate(given)]


def trace(name: str, layers: Layers) -> None:
    """Every layer run on the meta device (no memory, no random draws): its output must be a tensor."""
    h = torch.empty(1, *layers.input_shape, device="meta")
    for layer_name, layer in zip(layers.names, layers.modules, strict=True):
        try:
            h = meta_output(layer, h)
        except Exception as e:
            raise ConfigError(f"--network {name}: layer {layer_name!r} fails on an input of shape "
                              f"{tuple(h.shape)[1:]} ({one_line(e)})") from None
        if not isinstance(h, torch.Tensor):
            raise ConfigError(f"--network {name}: layer {layer_name!r} returns {type(h).__name__}, not a tensor")
