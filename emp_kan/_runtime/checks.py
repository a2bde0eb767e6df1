"""The one table of value checks: what a setting may be, said once, in the style of
scikit-learn's ``Interval`` and ``StrOptions``.

Every check raises ``ValueError`` naming the setting, what it must be and what it got, and
returns the value in its canonical type (``int``, ``float``, ``tuple``). Pure Python: the CLI's
parser reads these tables without importing numpy or torch.

>>> Interval(int, 0).check("steps", 50)
50
>>> Interval(float, 0, closed="neither").describe()
'a positive finite number'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Check",
    "Flag",
    "Interval",
    "NameMap",
    "Names",
    "Options",
    "Widths",
    "check_finite_nonneg",
    "check_whole",
]


class Check:
    """A constraint on one setting's value."""

    def check(self, name: str, value: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def fail(self, name: str, value: Any) -> ValueError:
        return ValueError(f"{name} must be {self.describe()}, got {value!r}")


@dataclass(frozen=True)
class Interval(Check):
    """A whole (``kind=int``) or finite real (``kind=float``) number in ``[low, high]``;
    ``closed`` says which ends belong to it ("both", "left", "right" or "neither")."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "left"

    def describe(self) -> str:
        what = "a whole number" if self.kind is int else "a finite number"
        low_in = self.closed in ("both", "left")
        high_in = self.closed in ("both", "right")
        if self.low == 0 and not low_in and self.high is None:
            return f"a positive {what.removeprefix('a ')}"
        if self.low is not None and self.high is not None:
            return (
                f"{what} {'>=' if low_in else '>'} {self.low:g} and "
                f"{'<=' if high_in else '<'} {self.high:g}"
            )
        if self.low is not None:
            return f"{what} {'>=' if low_in else '>'} {self.low:g}"
        if self.high is not None:
            return f"{what} {'<=' if high_in else '<'} {self.high:g}"
        return what

    def check(self, name: str, value: Any) -> int | float:
        if isinstance(value, bool):
            raise self.fail(name, value)
        if self.kind is int:
            if not isinstance(value, numbers.Integral):
                raise self.fail(name, value)
            value = int(value)
        else:
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise self.fail(name, value)
            value = float(value)
        low_in = self.closed in ("both", "left")
        high_in = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not low_in)):
            raise self.fail(name, value)
        if self.high is not None and (value > self.high or (value == self.high and not high_in)):
            raise self.fail(name, value)
        return value


@dataclass(frozen=True)
class Options(Check):
    """One of a fixed set of strings."""

    values: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(self.values)

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.values:
            raise self.fail(name, value)
        return value


@dataclass(frozen=True)
class Flag(Check):
    """True or False (not 0, 1 or a string)."""

    def describe(self) -> str:
        return "True or False"

    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(name, value)
        return value


@dataclass(frozen=True)
class Widths(Check):
    """A sequence of at least ``minimum`` positive whole numbers (layer widths)."""

    minimum: int = 1

    def describe(self) -> str:
        return f"at least {self.minimum} positive whole number(s), e.g. (5,)"

    def check(self, name: str, value: Any) -> tuple[int, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise self.fail(name, value)
        if len(value) < self.minimum:
            raise self.fail(name, value)
        out = []
        for width in value:
            if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
                raise self.fail(name, value)
            out.append(int(width))
        return tuple(out)


@dataclass(frozen=True)
class Names(Check):
    """A non-empty sequence of names (strings), e.g. a function library."""

    def describe(self) -> str:
        return "a non-empty list of names"

    def check(self, name: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
            raise self.fail(name, value)
        if not all(isinstance(item, str) and item for item in value):
            raise self.fail(name, value)
        return tuple(value)


@dataclass(frozen=True)
class NameMap(Check):
    """None, or a mapping of names to non-empty strings (e.g. units by column)."""

    example: str = "{'F': 'N'}"

    def describe(self) -> str:
        return f"None or a dict of names to text, e.g. {self.example}"

    def check(self, name: str, value: Any) -> dict[str, str] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items()
        ):
            raise self.fail(name, value)
        return dict(value)


def check_whole(name: str, value: Any, low: int = 0) -> int:
    """``value`` as an int, or ValueError unless it is a whole number >= ``low``."""
    return Interval(int, low).check(name, value)


def check_finite_nonneg(name: str, value: Any) -> float:
    """``value`` as a float, or ValueError unless it is a finite number >= 0."""
    return Interval(float, 0).check(name, value)
