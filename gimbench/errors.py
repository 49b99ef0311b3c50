"""The one kind of error a user's mistake raises: a one-line message naming the flag."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user mistake in the configuration; its message is one line, naming the flag."""


def one_line(error: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an error as one line of at most ``limit`` characters, for a ConfigError's reason."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:limit]
