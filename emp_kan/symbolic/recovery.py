"""Did a found formula recover the true one exactly? SRBench's rule (La Cava et al. 2021).

A model is an exact ("symbolic") solution when its test R^2 > 0.5 and, after rounding its
floats to 3 decimals and dropping constants with ``|c| < 1e-4``, sympy finds ``truth - model``
to be a constant (0 included) or ``model / truth`` to be a non-zero constant. A model that is 0
never counts.

Symbolic simplification can take very long on a wrong formula, so both differences are first
screened numerically at random points inside ``ranges``: only a pair that is numerically
constant there is handed to sympy for the proof.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from emp_kan.data.formula_parse import as_expression
from emp_kan.symbolic.expression import values_at

__all__ = ["is_exact_recovery", "round_formula"]


def round_formula(expr: Any, digits: int = 3, drop_below: float = 1e-4) -> Any:
    """Floats rounded to ``digits`` decimals; floats with ``|c| < drop_below`` become 0."""
    expr = as_expression(expr)
    replace = {}
    for f in expr.atoms(sp.Float):
        value = float(f)
        replace[f] = sp.Integer(0) if abs(value) < drop_below else sp.Float(round(value, digits))
    return expr.xreplace(replace)


def _by_name(
    expr: Any, variables: Sequence[Any], signs: Sequence[str] | None = None
) -> tuple[Any, list[sp.Symbol]]:
    """``expr`` with its symbols replaced by real symbols named as ``variables``.

    A variable whose entry of ``signs`` is ``"positive"`` or ``"nonnegative"`` is declared so,
    so that sympy may use ``sqrt(a)*sqrt(b) = sqrt(a*b)`` or ``sqrt(d**3) = d**(3/2)`` where
    the data allow it; ``"real"`` (the default) declares only that.
    """
    signs = signs if signs is not None else ["real"] * len(variables)
    plain = [sp.Symbol(str(v), **{sign: True}) for v, sign in zip(variables, signs, strict=True)]
    lookup = {str(v): p for v, p in zip(variables, plain, strict=True)}
    expr = as_expression(expr)
    return expr.xreplace({s: lookup[s.name] for s in expr.free_symbols if s.name in lookup}), plain


def _numerically_constant(expr, symbols, points: np.ndarray) -> bool:
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):  # rounding can leave (1.0*c - c)**(-0.5)
        return False
    values = values_at(expr, symbols, points)
    if values is None:
        return False  # numpy cannot evaluate it: nothing to screen, so nothing proven
    finite = np.isfinite(values)
    if finite.sum() < max(3, points.shape[0] // 2):
        return False
    v = values[finite]
    spread = float(np.max(np.abs(v - v[0])))
    return spread <= 1e-6 * max(1.0, float(np.max(np.abs(v))))


def _exact_decimals(expr):
    """Floats as the exact decimals they print as: after rounding to 3 decimals, 0.015 means
    3/200. sympy cannot cancel floats (it leaves ``(0.015*u + 0.03*w)**2 / (u + 2*w)**2``
    standing), but it cancels the rationals."""
    return expr.xreplace({f: sp.Rational(str(float(f))) for f in expr.atoms(sp.Float)})


def _constant(expr, symbols) -> bool:
    try:
        exact = _exact_decimals(expr)
        if not (sp.simplify(exact).free_symbols & set(symbols)):
            return True
        # sympy leaves hyperbolic functions of logs standing: (tanh(log(S)) + 1)/2 is
        # S**2/(S**2 + 1) only once tanh is written with exp
        if not exact.has(sp.functions.elementary.hyperbolic.HyperbolicFunction):
            return False
        return not (sp.simplify(exact.rewrite(sp.exp)).free_symbols & set(symbols))
    except Exception:  # sympy fails on some inputs; then we cannot prove it
        return False


def is_exact_recovery(
    found: Any,
    truth: Any,
    variables: Sequence[Any],
    *,
    test_r2: float | None = None,
    ranges: Mapping[str, tuple[float, float]] | Sequence[tuple[float, float]] | None = None,
    seed: int = 0,
) -> bool:
    """SRBench's exact-recovery rule.

    Parameters
    ----------
    found, truth : sympy expression or str
    variables : sequence of sympy.Symbol or str
        The input variables (matched by name between ``found`` and ``truth``).
    test_r2 : float, optional
        The found formula's test R^2; the rule requires > 0.5. Without it, only the symbolic
        part is checked.
    ranges : per-variable (low, high), optional
        Where to screen numerically (default [0.5, 2] for every variable, which avoids most
        poles and branch cuts). A variable whose range lies above 0 is treated as positive in
        the proof (``sqrt(a)*sqrt(b)`` equals ``sqrt(a*b)`` there), one whose range starts at
        0 as nonnegative.
    seed : int
        For the screening points.

    Returns
    -------
    bool
    """
    if test_r2 is not None and not (math.isfinite(test_r2) and test_r2 > 0.5):
        return False
    names = [str(v) for v in variables]
    if isinstance(ranges, Mapping):
        bounds = [tuple(ranges.get(n, (0.5, 2.0))) for n in names]
    elif ranges is not None:
        bounds = [tuple(r) for r in ranges]
    else:
        bounds = [(0.5, 2.0)] * len(names)
    signs = [
        "positive" if float(lo) > 0 else "nonnegative" if float(lo) == 0 else "real"
        for lo, _ in bounds
    ]
    found_r, symbols = _by_name(round_formula(found), names, signs)
    truth_r, _ = _by_name(truth, names, signs)
    if found_r == 0:
        return False
    rng = np.random.default_rng(seed)
    points = (
        np.column_stack([rng.uniform(lo, hi, 64) for lo, hi in bounds])
        if names
        else (np.zeros((64, 0)))
    )
    difference = truth_r - found_r
    if _numerically_constant(difference, symbols, points) and _constant(difference, symbols):
        return True
    ratio = found_r / truth_r
    if not _numerically_constant(ratio, symbols, points):
        return False
    if _constant(ratio, symbols):
        return sp.simplify(_exact_decimals(ratio)) != 0
    # sympy cannot use a range's upper end: sqrt((1 + x)/(1 - x)) = (1 + x)/sqrt(1 - x**2) for
    # x < 1 is proved by its square; a ratio that is real and continuous on the (connected)
    # ranges and whose square is a constant is that constant's root, of the sign seen at the
    # points.
    return (
        _real_everywhere(ratio, symbols, points)
        and _constant(ratio**2, symbols)
        and sp.simplify(_exact_decimals(ratio**2)) != 0
    )


def _real_everywhere(expr, symbols, points: np.ndarray) -> bool:
    """Whether ``expr`` is a finite real number at every one of ``points``."""
    values = values_at(expr, symbols, points)
    return values is not None and bool(np.isfinite(values).all() and (values.imag == 0).all())
