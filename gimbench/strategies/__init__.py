"""Strategies: the only code that decides how gradients flow. Registered by model name."""

from gimbench.strategies import end_to_end, frozen, greedy  # noqa: F401  (registers the strategies)
from gimbench.strategies.base import STRATEGIES, Method, Strategy, make_strategy, strategy_class

__all__ = ["STRATEGIES", "Method", "Strategy", "make_strategy", "strategy_class"]
