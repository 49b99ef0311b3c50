"""Strategies: the only code that decides how gradients flow, and each method's description beside it.

Importing the package registers every ``--model`` and variant (``STRATEGIES``), the ones trained by
``gimbench.distributed`` included: they are described here and name the engine that trains them.
"""

from gimbench.strategies import end_to_end, frozen, greedy  # noqa: F401  (registers the methods)
from gimbench.strategies.base import Strategy
from gimbench.strategies.method import STRATEGIES, Method, MethodSpec, spec_of

__all__ = ["STRATEGIES", "Method", "MethodSpec", "Strategy", "spec_of"]
