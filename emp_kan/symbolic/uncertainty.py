"""Constants with error bars: the standard errors of a formula's fitted constants, and snapping
each to the simplest number inside its error bar, the others refitted jointly after each snap.

With noisy labels a constant is only known to within its standard error: ``m2**1.0009`` with an
exponent known to +-0.002 is ``m2``. A fixed relative tolerance cannot say this (1e-3 is too
tight for 1% noise and too loose for none); the standard error can, since it grows with the
noise and shrinks with the rows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from emp_kan.data.split import Split
from emp_kan.symbolic.expression import (
    exponent_floats,
    finish_expression,
    numpy_xy,
    simplify_expression,
    snap_candidates,
)
from emp_kan.symbolic.refit import FloatProblem, floats_by_size

__all__ = [
    "constants_with_errors",
    "distribute_redundant_scales",
    "finish_within_errors",
    "snap_within_errors",
    "snapped_within_errors",
]

_MAX_CONSTANTS = 20
# A candidate inside 2.5 standard errors is consistent with the data (98.8% of a normal
# constant's estimates lie that close to it).
_WITHIN_ERRORS = 2.5


def _problem(expr: sp.Expr, variables: Sequence[Any], rows: Split) -> FloatProblem | None:
    floats = expr.atoms(sp.Float)
    if not floats or len(floats) > _MAX_CONSTANTS:
        return None
    x, y = numpy_xy(rows.fit["train_input"], rows.fit["train_label"])
    try:
        return FloatProblem(expr, variables, x, y, relative=spans_decades(y))
    except ValueError:  # no closed-form Jacobian: the constants stay as they are
        return None


_DECADES = 2.0


def spans_decades(y: np.ndarray) -> bool:
    """Whether labels ``y (n,)`` of one sign span more than two decades between their 5th and
    95th percentiles: then the constants are fitted to relative errors (``log|f| - log|y|``).
    Such labels are measured to a relative precision, and absolute errors would let the few
    largest rows decide every constant (on Newton's law in SI units with 1% noise, an absolute
    refit put r's exponent 12 standard errors from 2). The percentiles keep a few labels near 0
    from switching a law with additive noise to relative errors, where those rows' noise would
    decide every constant (Michaelis-Menten's ``2*S/(S + 1/2)`` on S in [0, 5])."""
    y = np.asarray(y, dtype=np.float64)
    if y.size < 2 or not (np.all(y > 0) or np.all(y < 0)):
        return False
    low, high = np.quantile(np.abs(y), [0.05, 0.95])
    return bool(np.log10(high / low) > _DECADES)


def constants_with_errors(
    expr: sp.Expr, variables: Sequence[Any], rows: Split
) -> list[dict[str, float | None]]:
    """Each float constant of ``expr`` (largest magnitude first) with its standard error from
    a least-squares refit on the fit rows of ``rows``: ``[{"value", "std_error"}]``, the value
    as it stands in ``expr`` and ``std_error`` None where the rows do not determine it (or the
    formula has more than 20 constants). Snapped numbers (integers, fractions, pi) are exact
    and not listed."""
    problem = _problem(expr, variables, rows)
    if problem is None:
        return [{"value": float(f), "std_error": None} for f in floats_by_size(expr)]
    fitted = problem.solve(problem.start)
    errors = problem.standard_errors(fitted)
    return [
        {"value": float(f), "std_error": float(e) if math.isfinite(e) else None}
        for f, e in zip(problem.floats, errors, strict=True)
    ]


def snap_within_errors(
    expr: sp.Expr,
    variables: Sequence[Any],
    rows: Split,
    within: float = _WITHIN_ERRORS,
    whole_only: bool = False,
    whole_first: bool = False,
) -> sp.Expr:
    """``expr`` with each float snapped to the simplest number inside ``within`` standard
    errors of it, where that costs no more on the validation rows than their own sampling
    noise.

    The floats are refitted jointly on the fit rows and their standard errors taken
    (:class:`~emp_kan.symbolic.refit.FloatProblem`); then, largest first, each float tries
    the numbers :func:`~emp_kan.symbolic.expression.snap_candidates` offers (0, the nearest
    integer, small fractions, multiples of pi and the normalisers) that lie inside its error
    bar: the float is held there, the others refitted, and the snap kept when the validation
    RMSE stays within ``1 + 1/sqrt(n_val)`` of the unsnapped formula's (the spread of an RMSE
    measured on ``n_val`` rows). Errors are relative where the labels span decades
    (:func:`spans_decades`). With ``whole_only`` a coefficient tries 0 and the nearest integer
    only (an exponent still its integer, half and third); with ``whole_first`` every float
    tries that first, and then, those left, every number (one refit serves both passes).
    Without a kept snap ``expr`` is returned as it was.
    """
    problem = _problem(expr, variables, rows)
    if problem is None:
        return expr
    val_x, val_y = numpy_xy(rows.validation["x"], rows.validation["y"])
    base = problem.rmse(problem.start, val_x, val_y)
    if not math.isfinite(base):
        return expr
    budget = base * (1.0 + 1.0 / math.sqrt(max(1, val_y.size)))
    fitted = problem.solve(problem.start)
    errors = problem.standard_errors(fitted)
    exponents = exponent_floats(expr)
    exact: dict[int, sp.Expr] = {}
    passes = (True, False) if whole_first else (whole_only,)
    for whole, k in itertools.product(passes, range(len(problem.floats))):
        if k in exact or not math.isfinite(errors[k]):
            continue
        numbers = snap_candidates(float(fitted[k]), problem.floats[k] in exponents)
        if whole and problem.floats[k] not in exponents:
            numbers = [number for number in numbers if number.is_Integer]
        for number in numbers:
            value = float(number)
            if value == float(fitted[k]) or abs(value - fitted[k]) > within * errors[k]:
                continue
            held = {**{i: float(v) for i, v in exact.items()}, k: value}
            trial = problem.solve(fitted, held)
            if problem.rmse(trial, val_x, val_y) <= budget:
                exact[k] = number
                fitted = trial
                errors = problem.standard_errors(fitted, held=list(exact))
                break
    if not exact:
        return expr
    return problem.expression(fitted, exact)


def snapped_within_errors(
    expr: sp.Expr,
    variables: Sequence[Any],
    rows: Split,
    whole_only: bool = False,
    whole_first: bool = False,
) -> sp.Expr:
    """:func:`snap_within_errors`, then simplified where a snap changed something (an exponent
    of 1 or a coefficient of 0 lets terms merge or go)."""
    snapped = snap_within_errors(
        expr, variables, rows, whole_only=whole_only, whole_first=whole_first
    )
    return expr if snapped is expr else simplify_expression(snapped)


def distribute_redundant_scales(expr: sp.Expr) -> sp.Expr:
    """``expr`` with every product of a float and a sum whose terms each hold a float
    multiplied out: ``0.402*I*(0.746*S - 0.249)`` -> ``0.300*I*S - 0.100*I``. The rows fix only
    the products of such a scale with the sum's floats, so no float has an error bar of its own
    (the scale can grow as the others shrink) and none could snap. A float times a root of
    such a sum is taken inside the root the same way."""

    def redundant(node: sp.Expr) -> bool:
        if not node.is_Mul or not any(a.is_Float for a in node.args):
            return False
        return any(
            factor.is_Add and all(term.atoms(sp.Float) for term in factor.args)
            for factor in node.args
        )

    return _scales_into_roots(expr.replace(redundant, sp.expand_mul))


def _scales_into_roots(expr: sp.Expr) -> sp.Expr:
    """``expr`` with every float that multiplies one root of a sum whose terms each hold a
    float taken inside it: ``9152.9*c*sqrt(1e-7*G*rho - 1.19e-8*k)`` ->
    ``c*sqrt(8.378*G*rho - 1.0*k)``, as :func:`distribute_redundant_scales` does for a sum."""

    def root_of_floats(factor: sp.Expr) -> bool:
        if not (factor.is_Pow and factor.exp.is_Rational and not factor.exp.is_Integer):
            return False
        base = sp.expand_mul(factor.base)  # k*(a/k - b): a - b*k
        return base.is_Add and all(term.atoms(sp.Float) for term in base.args)

    def redundant(node: sp.Expr) -> bool:
        scales = [a for a in node.args if a.is_Float] if node.is_Mul else []
        return len(scales) == 1 and sum(map(root_of_floats, node.args)) == 1

    def taken_in(node: sp.Expr) -> sp.Expr:
        scale = next(a for a in node.args if a.is_Float)
        root = next(a for a in node.args if root_of_floats(a))
        times = sp.Float(abs(float(scale)) ** float(1 / root.exp))
        inside = sp.expand_mul(sp.expand_mul(root.base) * times)
        rest = node.func(*[a for a in node.args if a is not scale and a is not root])
        return sp.sign(scale) * rest * inside**root.exp

    return expr.replace(redundant, taken_in)


def finish_within_errors(expr: sp.Expr, variables: Sequence[Any], rows: Split) -> sp.Expr:
    """A found formula finished on ``rows``: whole numbers within the error bars first (with
    noise the fixed tolerance of :func:`~emp_kan.symbolic.expression.finish_expression` would
    snap an offset of 0 +- 0.02 to 1/62 rather than to 0), then every snap within the error
    bars (the cheapest number inside each, :func:`~emp_kan.symbolic.expression.snap_cost`:
    left to the fixed tolerance, the validation rows' own noise would pick a phase of 11/7
    over pi/2), then ``finish_expression`` on the validation rows (simplified, and what the
    error bars left snapped at a fixed tolerance), then, where that changed the formula, the
    error bars once more for the numbers simplifying exposed. A float times a sum of terms
    that each hold a float is distributed first (:func:`distribute_redundant_scales`)."""
    val = rows.validation
    expr = distribute_redundant_scales(expr)
    expr = snapped_within_errors(expr, variables, rows, whole_first=True)
    finished = finish_expression(expr, variables, val["x"], val["y"])
    # unchanged by it, the formula has nothing the error bars have not tried
    return expr if finished == expr else snapped_within_errors(finished, variables, rows)
