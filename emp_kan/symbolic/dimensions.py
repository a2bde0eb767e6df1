"""The dimension of a formula: whether it is dimensionally homogeneous, and the units its
constants must carry for it to be."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import sympy as sp

from emp_kan.data.units import DIMENSIONLESS, Dimension

__all__ = ["DimensionError", "constant_dimensions", "dimension_of_expression"]


class DimensionError(ValueError):
    """A formula that adds unlike quantities or applies a function to a quantity with units."""


def _add(a: Dimension, b: Dimension, times: Fraction = Fraction(1)) -> Dimension:
    return tuple(x + times * y for x, y in zip(a, b, strict=True))


def _fraction(number: sp.Expr) -> Fraction:
    return Fraction(str(sp.nsimplify(number))).limit_denominator(1000)


def dimension_of_expression(expr: sp.Expr, dimensions: Mapping[str, Dimension]) -> Dimension:
    """The dimension of ``expr`` whose symbols have ``dimensions`` (by name); every number in
    it is a pure number.

    Raises
    ------
    DimensionError
        Naming the sub-expression that adds unlike dimensions, raises a quantity with units to
        a power that is not a number, or hands one to a function other than ``Abs``.
    """
    if expr.is_Number or expr.is_NumberSymbol:
        return DIMENSIONLESS
    if expr.is_Symbol:
        if expr.name not in dimensions:
            raise DimensionError(f"{expr} has no unit")
        return dimensions[expr.name]
    if expr.is_Add:
        terms = [dimension_of_expression(t, dimensions) for t in expr.args]
        if any(t != terms[0] for t in terms[1:]):
            raise DimensionError(f"{expr} adds quantities of different dimensions")
        return terms[0]
    if expr.is_Mul:
        out = DIMENSIONLESS
        for factor in expr.args:
            out = _add(out, dimension_of_expression(factor, dimensions))
        return out
    if expr.is_Pow:
        base, exponent = expr.args
        inner = dimension_of_expression(base, dimensions)
        if exponent.is_Number:
            return _add(DIMENSIONLESS, inner, _fraction(exponent))
        if inner != DIMENSIONLESS or dimension_of_expression(exponent, dimensions) != DIMENSIONLESS:
            raise DimensionError(f"{expr} raises a quantity with units to a symbolic power")
        return DIMENSIONLESS
    if isinstance(expr, sp.Abs):
        return dimension_of_expression(expr.args[0], dimensions)
    for argument in expr.args:
        if dimension_of_expression(argument, dimensions) != DIMENSIONLESS:
            raise DimensionError(f"{expr} applies a function to a quantity with units")
    return DIMENSIONLESS


def constant_dimensions(
    expr: sp.Expr, dimensions: Mapping[str, Dimension], target: Dimension
) -> dict[sp.Float, Dimension] | None:
    """The dimension each float of ``expr`` carries when ``expr`` has the ``target``'s: a
    float that is a term's coefficient (``G`` in ``G*m1*m2/r**2``, ``b`` in ``a*x + b``)
    carries whatever the rest of its term lacks, every other float is a pure number. None when
    the formula cannot be made homogeneous that way (a function of a quantity with units)."""
    out: dict[sp.Float, Dimension] = {f: DIMENSIONLESS for f in expr.atoms(sp.Float)}
    for term in sp.Add.make_args(expr):
        coefficient, rest = term.as_coeff_Mul()
        try:
            rest_dimension = dimension_of_expression(rest, dimensions)
        except DimensionError:
            return None
        if isinstance(coefficient, sp.Float):
            out[coefficient] = _add(target, rest_dimension, Fraction(-1))
        elif rest_dimension != target:
            return None
    return out
