"""Plain-dict registries with a ``register`` decorator; they feed argparse ``choices`` and ``gimbench list``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Registry(dict[str, Any]):
    """A named dict of builders; ``@REGISTRY.register("name")`` adds one."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator that files ``obj`` under ``name``; a name may be registered once."""

        def add(obj: Any) -> Any:
            if name in self:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self[name] = obj
            return obj

        return add
