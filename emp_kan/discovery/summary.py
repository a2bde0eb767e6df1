"""Parts of the report: the versions that decide its numbers, and what the units did."""

from __future__ import annotations

import platform
from typing import Any

import torch

from emp_kan import __version__
from emp_kan.data.groups import Groups
from emp_kan.data.units import dimension_text, unit_dimensions
from emp_kan.symbolic.dimensions import constant_dimensions

__all__ = ["carried_dimensions", "constants_in_units", "units_report", "versions"]


def versions() -> dict[str, str]:
    """Versions of the parts that decide the numbers."""
    import numpy
    import sympy

    try:
        from importlib.metadata import version

        pykan = version("pykan")
    except Exception:  # not installed as a distribution
        pykan = "unknown"
    return {
        "emp_kan": __version__,
        "pykan": pykan,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sympy": sympy.__version__,
        "python": platform.python_version(),
    }


def units_report(problem: Any, groups: Groups | None, note: str) -> dict[str, Any] | None:
    """The report's ``units``: the units given, what the dimensional analysis did (``note``),
    and with ``groups`` each group's formula, the label the KAN learned and its normaliser.
    None when no units were given."""
    if not problem.units:
        return None
    out: dict[str, Any] = {"given": dict(problem.units), "note": note}
    if groups is None:
        return out | {"groups": None, "label": None, "normaliser": None}
    return out | groups.describe()


def constants_in_units(
    constants: list[dict[str, Any]], expression: Any, problem: Any
) -> list[dict[str, Any]]:
    """``constants`` (the report's, ``{"value", "std_error"}``) each with the ``units`` it
    carries in ``expression`` (SI base units; None where the formula cannot be made
    homogeneous), when ``problem`` has units; unchanged otherwise."""
    if not problem.units:
        return constants
    carried = carried_dimensions(expression, problem)
    by_value = {} if carried is None else {float(f): d for f, d in carried.items()}
    return [
        dict(c, units=dimension_text(by_value[c["value"]]) if c["value"] in by_value else None)
        for c in constants
    ]


def carried_dimensions(expression: Any, problem: Any) -> dict[Any, Any] | None:
    """The dimension each float of ``expression`` carries for it to have the units of
    ``problem``'s target, given its columns' units (see
    :func:`~emp_kan.symbolic.dimensions.constant_dimensions`); None when it cannot."""
    variables, target = unit_dimensions(problem.units, problem.variables, problem.target)
    dimensions = dict(zip(problem.variables, variables, strict=True))
    return constant_dimensions(expression, dimensions, target)
