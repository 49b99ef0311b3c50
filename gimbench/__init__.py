"""gimbench: memory and time of greedy, gradient-isolated training (GIM) versus end-to-end CPC.

The names below are loaded on first use (PEP 562), so importing a submodule (``gimbench.losses``) loads that
submodule alone, not the run lifecycle, the report layer or rich; and ``python -m gimbench`` sets up its signal
handling before torch is imported (``gimbench.__main__``).
"""

from __future__ import annotations

import importlib

__all__ = ["ConfigError", "RunConfig", "RunEnded", "RunResult", "resume", "run"]
__version__ = "0.1.0"

_HOMES = {"ConfigError": "gimbench.errors", "RunConfig": "gimbench.config", "RunEnded": "gimbench.runs.failures",
          "RunResult": "gimbench.results.schema", "resume": "gimbench.runs.resume", "run": "gimbench.runs.run"}


def __getattr__(name: str) -> object:
    """One of ``__all__``, imported from its home; a result of the Python API renders with rich
    (``gimbench.report.terminal`` registers how), so it is loaded with them."""
    if name not in _HOMES:
        raise AttributeError(f"module 'gimbench' has no attribute {name!r}")
    if name in ("RunResult", "resume", "run"):
        importlib.import_module("gimbench.report.terminal")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
