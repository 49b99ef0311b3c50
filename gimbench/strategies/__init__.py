"""Strategies: the only code that decides how gradients flow. Registered by model name."""

from gimbench.strategies import end_to_end, frozen, greedy  # noqa: F401  (registers the strategies)
from gimbench.strategies.base import STRATEGIES, Strategy, make_strategy

__all__ = ["STRATEGIES", "Strategy", "make_strategy"]
from gimbench.distributed import module_parallel  # noqa: E402,F401  (registers --gim-mode module-parallel)
