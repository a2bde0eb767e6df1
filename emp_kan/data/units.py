"""Units of a problem's columns: read with pint into exponents of the seven SI base dimensions.

A unit is written as pint reads it (``kg*m/s^2``, ``N``, ``V/m``, ``J*s``, ``1`` for a pure
number); only its dimension matters here, not its scale, so ``eV`` and ``J`` are the same
energy. Units come from ``--units "F=N,m1=kg"``, from CSV headers like ``F [N]``, or from the
estimators' ``units=``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction

__all__ = [
    "BASE_DIMENSIONS",
    "Dimension",
    "dimension_of",
    "dimension_text",
    "parse_units_option",
    "split_unit_header",
    "unit_dimensions",
]

# pint's names of the SI base dimensions, in the order a Dimension lists their exponents.
BASE_DIMENSIONS = (
    "[mass]",
    "[length]",
    "[time]",
    "[current]",
    "[temperature]",
    "[substance]",
    "[luminosity]",
)
_SI_SYMBOLS = ("kg", "m", "s", "A", "K", "mol", "cd")

Dimension = tuple[Fraction, ...]  # exponents of BASE_DIMENSIONS; all zero: a pure number
DIMENSIONLESS: Dimension = (Fraction(0),) * len(BASE_DIMENSIONS)


@functools.lru_cache(maxsize=1)
def _registry():
    import pint

    return pint.UnitRegistry()


@functools.lru_cache(maxsize=512)
def dimension_of(unit: str) -> Dimension:
    """The dimension of ``unit`` (``"kg*m/s^2"`` -> mass 1, length 1, time -2).

    Raises
    ------
    ValueError
        One line naming the unit when pint cannot read it, or when it is not a pure unit (a
        number in it, ``2*m``, or a dimension other than the SI base ones).
    """
    text = unit.strip()
    if text in ("", "1", "-"):
        return DIMENSIONLESS
    fix = "write it as pint reads it, e.g. kg*m/s^2, N, V/m or 1 for a pure number"
    try:
        parsed = _registry().parse_units(text)
    except Exception as error:  # pint raises several kinds; all mean "cannot read it"
        raise ValueError(f"cannot read the unit {unit!r} ({error}); {fix}") from None
    exponents = dict(parsed.dimensionality)
    unknown = [name for name in exponents if name not in BASE_DIMENSIONS]
    if unknown:
        raise ValueError(f"the unit {unit!r} has the dimension {unknown[0]}; {fix}")
    return tuple(
        Fraction(exponents.get(name, 0)).limit_denominator(1000) for name in BASE_DIMENSIONS
    )


def dimension_text(dimension: Sequence[Fraction]) -> str:
    """``dimension`` in SI base units: ``"m^3/(kg*s^2)"``, ``"1"`` for a pure number."""

    def power(symbol: str, exponent: Fraction) -> str:
        return symbol if exponent == 1 else f"{symbol}^{exponent}"

    up = [power(s, e) for s, e in zip(_SI_SYMBOLS, dimension, strict=True) if e > 0]
    down = [power(s, -e) for s, e in zip(_SI_SYMBOLS, dimension, strict=True) if e < 0]
    top = "*".join(up) or "1"
    if not down:
        return top
    bottom = down[0] if len(down) == 1 else f"({'*'.join(down)})"
    return f"{top}/{bottom}"


_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(.*?)\s*$")


def parse_units_option(spec: str) -> dict[str, str]:
    """``"F=kg*m/s^2, m1=kg"`` -> ``{"F": "kg*m/s^2", "m1": "kg"}``, every unit checked.

    Raises
    ------
    ValueError
        A part that is not ``NAME=UNIT``, a name given twice, or a unit pint cannot read.
    """
    out: dict[str, str] = {}
    for part in spec.split(","):
        match = _ASSIGNMENT.match(part)
        if not match or not match.group(2):
            raise ValueError(
                f"cannot read units {part.strip()!r}; write NAME=UNIT, e.g. F=kg*m/s^2,m1=kg"
            )
        name, unit = match.group(1), match.group(2)
        if name in out:
            raise ValueError(f"{name} has two units")
        dimension_of(unit)
        out[name] = unit
    return out


_HEADER_UNIT = re.compile(r"^(.*?\S)\s*\[([^\[\]]+)\]\s*$")


def split_unit_header(column: str) -> tuple[str, str | None]:
    """A CSV header's name and unit: ``"F [N]"`` -> ``("F", "N")``; ``"F"`` -> ``("F", None)``."""
    match = _HEADER_UNIT.match(column)
    if not match:
        return column, None
    return match.group(1), match.group(2).strip()


def unit_dimensions(
    units: Mapping[str, str], variables: Sequence[str], target: str
) -> tuple[list[Dimension], Dimension]:
    """The dimensions of ``variables`` and of ``target`` from ``units`` (name -> unit).

    Raises
    ------
    ValueError
        Naming the columns without a unit, or a unit given for a name that is not a column.
    """
    names = [*variables, target]
    unknown = [n for n in units if n not in names]
    if unknown:
        raise ValueError(
            f"units are given for {', '.join(map(repr, unknown))}, which is not a column; "
            f"the columns are {', '.join(names)}"
        )
    missing = [n for n in names if n not in units]
    if missing:
        raise ValueError(
            f"no unit given for {', '.join(map(repr, missing))}; give every column a unit "
            "(1 for a pure number)"
        )
    return [dimension_of(units[v]) for v in variables], dimension_of(units[target])
