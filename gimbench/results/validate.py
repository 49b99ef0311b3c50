"""Reading a JSON file gimbench did not necessarily write itself: parsed, then checked against a schema.

A file may be damaged, edited by hand, written by an older version or crafted; whatever it holds, reading it
either returns a document whose every field a reader uses has the type that reader expects, or raises
``ConfigError``, one line naming the file and the field. Schemas are declarative (``Obj``, ``ListOf``,
``MapOf``, ``Nullable`` over leaf ``Kind``s), so what a file must hold is read in one place
(``gimbench.results.schemas``) instead of being guarded by checks scattered over its readers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gimbench.errors import ConfigError

MAX_NESTING = 64  # gimbench's own files nest 6 levels; anything deeper is not one of them
DAMAGED = "the file is damaged or was not written by gimbench"


class Invalid(ValueError):
    """A value that does not fit its schema: ``at`` is where (``step.time_ms``), ``reason`` what is wrong."""

    def __init__(self, at: str, reason: str) -> None:
        super().__init__(f"{at or 'the document'} {reason}")


def _shown(value: object) -> str:
    text = " ".join(repr(value).split())  # one line: a tensor's repr spans several
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Kind:
    """A leaf: the JSON types it accepts (``bool`` only where named: JSON's ``true`` is not a number here) and
    a check of the value."""

    name: str
    types: tuple[type, ...]
    check: Callable[[object], bool] = lambda value: True

    def fits(self, value: object) -> bool:
        is_bool = isinstance(value, bool) and bool not in self.types
        return not is_bool and isinstance(value, self.types) and self.check(value)

    def validate(self, value: object, at: str) -> None:
        if not self.fits(value):
            raise Invalid(at, f"is {_shown(value)}, not {self.name}")


@dataclass(frozen=True)
class Nullable:
    """``inner`` or ``null``."""

    inner: object

    def fits(self, value: object) -> bool:
        """For a leaf ``inner`` only (see ``ListOf``)."""
        return value is None or self.inner.fits(value)

    def validate(self, value: object, at: str) -> None:
        if value is not None:
            self.inner.validate(value, at)


@dataclass(frozen=True)
class Row:
    """A list of a fixed length whose items fit ``items`` in order (a checkpoint's ``[module, phase, seconds]``)."""

    items: tuple

    def validate(self, value: object, at: str) -> None:
        if not isinstance(value, list | tuple) or len(value) != len(self.items):
            raise Invalid(at, f"is {_shown(value)}, not a list of {len(self.items)} items")
        for i, (item, schema) in enumerate(zip(value, self.items, strict=True)):
            schema.validate(item, f"{at}[{i}]")


@dataclass(frozen=True)
class ListOf:
    """A list whose every item fits ``item``."""

    item: object

    def validate(self, value: object, at: str) -> None:
        if not isinstance(value, list):
            raise Invalid(at, f"is {_shown(value)}, not a list")
        leaf = isinstance(self.item, Kind) or isinstance(self.item, Nullable) and isinstance(self.item.inner, Kind)
        # Leaves are checked in one pass (a per-step history of 10^6 numbers); the first misfit is named below.
        start = next((i for i, item in enumerate(value) if not self.item.fits(item)), len(value)) if leaf else 0
        for i in range(start, len(value)):
            self.item.validate(value[i], f"{at}[{i}]")


@dataclass(frozen=True)
class MapOf:
    """An object whose every value fits ``value`` (keys are free: probe tasks, phases)."""

    value: object

    def validate(self, value: object, at: str) -> None:
        if not isinstance(value, dict):
            raise Invalid(at, f"is {_shown(value)}, not an object")
        for key, item in value.items():
            self.value.validate(item, _join(at, key))


@dataclass(frozen=True)
class Obj:
    """An object with ``required`` and ``optional`` keys; other keys fit the first ``patterns`` entry whose
    suffix they end with (``_bytes``: a byte figure), else ``rest`` (``None``: unchecked, nothing reads them)."""

    required: dict = field(default_factory=dict)
    optional: dict = field(default_factory=dict)
    patterns: tuple = ()
    rest: object = None
    together: tuple = ()  # keys that are all null or all set (figures computed from the same steps)

    def validate(self, value: object, at: str) -> None:
        if not isinstance(value, dict):
            raise Invalid(at, f"is {_shown(value)}, not an object")
        missing = [key for key in self.required if key not in value]
        if missing:
            raise Invalid(_join(at, missing[0]), "is missing")
        for key, item in value.items():
            schema = self.required.get(key) or self.optional.get(key) or self._pattern(key)
            if schema is not None:
                schema.validate(item, _join(at, key))
        if len({value.get(key) is None for key in self.together}) > 1:
            others = ", ".join(self.together[1:])
            raise Invalid(_join(at, self.together[0]), f"and {others} are not all null or all set")

    def _pattern(self, key: str):
        found = (schema for suffix, schema in self.patterns if isinstance(key, str) and key.endswith(suffix))
        return next(found, self.rest)


def _join(at: str, key: str) -> str:
    return f"{at}.{key}" if at else str(key)


def _finite(value: float | int) -> bool:
    return math.isfinite(value) and abs(value) < 2**63 if isinstance(value, float) else abs(value) < 2**63


STR = Kind("a string", (str,))
BOOL = Kind("true or false", (bool,))
INT = Kind("an integer", (int,), lambda v: abs(v) < 2**63)
COUNT = Kind("a count (an integer of at least 0)", (int,), lambda v: 0 <= v < 2**63)
NUMBER = Kind("a finite number", (int, float), _finite)
AMOUNT = Kind("a finite number of at least 0", (int, float), lambda v: _finite(v) and v >= 0)
ANY = Kind("a JSON value", (object, bool))


def _plain(value: object) -> bool:
    """Whether ``value`` is plain JSON data all the way down (a checkpoint could hold a tensor anywhere)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo += [*item.values(), *(k for k in item if not isinstance(k, str | int))]
        elif isinstance(item, list | tuple):
            todo += list(item)
        elif not (item is None or isinstance(item, str | bool) or isinstance(item, int | float) and _finite(item)):
            return False
    return True


PLAIN = Kind("plain data (strings, finite numbers, lists, maps)", (object, bool), _plain)


def _depth(document: object) -> int:
    """How deeply ``document`` nests lists and objects, without recursion (a crafted file may nest 10^5 deep)."""
    deepest, todo = 0, [(document, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                todo += [(item, depth + 1) for item in (value.values() if isinstance(value, dict) else value)]
    return deepest


def read_json(path: Path) -> object:
    """The parsed content of a JSON file, or ``ConfigError``: unreadable, not JSON, nested beyond any file
    gimbench writes, or holding a number Python will not read. ``FileNotFoundError`` is left to the caller,
    which knows what a missing file means."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise
    except RecursionError:
        raise ConfigError(f"{path} is not valid JSON for gimbench (nested too deeply to read)") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: JSONDecodeError, a 5,000-digit number
        raise ConfigError(f"{path} is unreadable or not valid JSON ({' '.join(str(e).split())[:200]})") from None
    if _depth(document) > MAX_NESTING:
        raise ConfigError(f"{path} is not valid JSON for gimbench (nested more than {MAX_NESTING} levels deep)")
    try:  # an escaped lone surrogate ("\\udcff") parses, then fails wherever the text is printed or drawn
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{path} is not valid JSON for gimbench (a string holds a lone surrogate)") from None
    return document


def check(document: object, schema, path: Path, what: str = DAMAGED) -> None:
    """``ConfigError`` naming ``path`` and the first field of ``document`` that does not fit ``schema``."""
    try:
        schema.validate(document, "")
    except Invalid as e:
        raise ConfigError(f"{path}: {e}: {what}") from None
