"""Formulas as sympy expressions: evaluated on rows, constants snapped to simple values, and
simplified to the shortest form that gives the same values on the validation rows."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
import torch

from emp_kan.data.formula_parse import as_expression

__all__ = [
    "coefficients_as_floats",
    "evaluate_formula",
    "expansion_risk",
    "exponent_floats",
    "finish_expression",
    "formula_complexity",
    "is_plain_number",
    "lambdify_by_name",
    "parameter_symbols",
    "numpy_xy",
    "predict_rows",
    "rmse_r2",
    "simplify_expression",
    "snap_candidates",
    "snap_constants",
    "snap_cost",
]


def parameter_symbols(count: int, variables) -> list[sp.Symbol]:
    """``count`` plain symbols ``_c0, _c1, ...`` for a formula's constants, named apart from
    ``variables`` (more leading underscores until none clashes).

    Plain symbols rather than ``sp.Dummy``: lambdify replaces every argument of a function
    that has one Dummy argument by a new Dummy, rebuilding the expression once per argument,
    which made lambdifying most of a refit's cost.
    """
    names = {str(v) for v in variables}
    prefix = "_c"
    while any(name.startswith(prefix) for name in names):
        prefix = "_" + prefix
    return [sp.Symbol(f"{prefix}{k}") for k in range(count)]


def lambdify_by_name(expr, variables, params=()):
    """``expr`` as a numpy function of ``variables`` (matched by name) and then ``params``."""
    names = [str(v) for v in variables]
    expr = as_expression(expr)
    # The expression's own symbols are the arguments where their names are unique in it (a
    # symbol declared real is the same argument to numpy): rebuilding the expression with
    # plain symbols costs sympy's assumption queries on every node.
    by_name: dict[str, list[sp.Symbol]] = {}
    for s in expr.free_symbols:
        by_name.setdefault(s.name, []).append(s)
    if any(len(found) > 1 for name, found in by_name.items() if name in names):
        expr = expr.xreplace({s: sp.Symbol(s.name) for s in expr.free_symbols if s.name in names})
        by_name = {name: [sp.Symbol(name)] for name in by_name}
    symbols = [by_name[n][0] if n in by_name else sp.Symbol(n) for n in names]
    # numpy code has no complex infinity (a formula mapped back can fold 1/0 into zoo): it
    # evaluates to NaN, which every caller reads as "not finite here"
    expr = expr.xreplace({sp.zoo: sp.nan})
    # nor integers beyond int64: numpy's log(241652272756479541743003369472) is an object
    # array without a log method
    huge = {r: sp.Float(r) for r in expr.atoms(sp.Rational) if max(abs(r.p), abs(r.q)) >= 2**62}
    if huge:
        expr = expr.xreplace(huge)
    return sp.lambdify(symbols + list(params), expr, "numpy")


def values_at(expr, variables, points: np.ndarray) -> np.ndarray | None:
    """``expr`` at each of ``points`` ``(m, d)`` (columns in the order of ``variables``,
    matched by name) as complex numbers ``(m,)``; None when numpy cannot evaluate it."""
    try:
        fn = lambdify_by_name(expr, variables)
        with np.errstate(all="ignore"):
            values = np.asarray(fn(*points.T), dtype=np.complex128)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return np.broadcast_to(values, (points.shape[0],))


def predict_rows(fn, xs: np.ndarray, n: int, params=()) -> np.ndarray:
    """Real predictions ``(n,)`` of a lambdified formula; NaN where complex or undefined."""
    with np.errstate(all="ignore"):
        pred = np.broadcast_to(np.asarray(fn(*xs.T, *params), dtype=np.complex128), (n,))
    if np.abs(pred.imag).max(initial=0.0) > 1e-9:
        return np.full(n, np.nan)
    return pred.real


def evaluate_formula(expr, variables, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(RMSE, R^2) of ``expr`` on inputs ``x (n, d)`` and labels ``y (n, 1)``.

    ``variables`` (symbols or names) are matched to the columns of ``x`` by name, so formulas
    from other sources (pykan's, the truth) evaluate alike. NaN for non-finite predictions.
    """
    xs, ys = numpy_xy(x, y)
    return rmse_r2(predict_rows(lambdify_by_name(expr, variables), xs, ys.size), ys)


# Each normaliser with its cost in bits (see snap_cost).
_SNAP_UNITS = (
    (sp.pi, 2.0),
    (1 / sp.pi, 2.0),
    (1 / sp.sqrt(sp.pi), 3.0),
    (1 / sp.sqrt(2 * sp.pi), 3.5),
    (sp.sqrt(2), 2.0),
    (sp.pi**2, 2.5),
    (1 / sp.pi**2, 3.0),
)
_E_POWER_COST = 3.0
_PLAIN_DENOMINATOR = 12
# Where a fixed tolerance on the rows decides (snap_constants), a number other than a whole
# number or a fraction of denominator <= 12 must also agree with the float to this share of it:
# with noise such numbers lie thick around every float, and the rows' noise picks one.
_FANCY_AGREEMENT = 1e-4


def _rational_cost(number: Fraction) -> float:
    return math.log2(abs(number.numerator) + 1) + math.log2(number.denominator)


def snap_cost(value: float, exponent: bool = False) -> list[tuple[float, Any]]:
    """The numbers a float ``value`` may snap to with their cost in bits, cheapest first.

    A fraction ``p/q`` costs ``log2(|p| + 1) + log2(q)``; a fraction times a normaliser (pi,
    1/pi, 1/sqrt(pi), 1/sqrt(2 pi), sqrt(2), pi**2, 1/pi**2) or e to a whole or half power
    costs that plus the normaliser's own bits. Where several numbers fit the data, the
    cheapest is the simplest law: ``pi/2`` (4 bits) before ``11/7`` (6.4), ``3/10`` (5.3)
    before ``3/(4*sqrt(2*pi))`` (7.5).
    """
    if exponent:
        near = [Fraction(round(value * q), q) for q in (1, 2, 3)]
        pairs = [(_rational_cost(f), sp.Rational(f.numerator, f.denominator)) for f in near]
    else:
        fractions = [Fraction(0), Fraction(round(value))]
        fractions.append(Fraction(value).limit_denominator(_PLAIN_DENOMINATOR))
        # Small numerators over larger denominators: 1/16 and 1/32 are common in physics.
        frac = Fraction(value).limit_denominator(64)
        if 0 < abs(frac.numerator) <= 4:
            fractions.append(frac)
        pairs = [(_rational_cost(f), sp.Rational(f.numerator, f.denominator)) for f in fractions]
        # Rational multiples of pi, and simple ones (p/q with p <= 4, q <= 16) of the other
        # normalisers: 3/(8*pi), not 13/(5*sqrt(pi)).
        for unit, bits in _SNAP_UNITS:
            unit_frac = Fraction(value / float(unit)).limit_denominator(12 if unit == sp.pi else 16)
            if unit_frac != 0 and (unit == sp.pi or abs(unit_frac.numerator) <= 4):
                number = sp.Rational(unit_frac.numerator, unit_frac.denominator) * unit
                pairs.append((_rational_cost(unit_frac) + bits, number))
        # Powers of e with whole or half exponents: an exponential's shift comes out as a
        # factor (the Morse potential's exp(-3*(r - 1)/2) as exp(3/2)*exp(-3*r/2)).
        if value != 0 and 0.02 < abs(math.log(abs(value))) <= 6:
            for q in (1, 2):
                p = round(math.log(abs(value)) * q)
                if p != 0:
                    power = Fraction(p, q)
                    number = (1 if value > 0 else -1) * sp.exp(sp.Rational(p, q))
                    pairs.append((_rational_cost(power) + _E_POWER_COST, number))
    best: dict[Any, float] = {}
    for cost, number in pairs:
        best[number] = min(cost, best.get(number, math.inf))
    return sorted(((cost, number) for number, cost in best.items()), key=lambda p: p[0])


def snap_candidates(value: float, exponent: bool = False) -> list[Any]:
    """The numbers a float ``value`` may snap to, simplest (cheapest, :func:`snap_cost`)
    first: 0, the nearest integer, small fractions, rational multiples of pi and simple ones of
    1/pi, 1/sqrt(pi), 1/sqrt(2 pi), sqrt(2), pi**2 and 1/pi**2, and e to a whole or half
    power; for an ``exponent``, only the nearest integer, half and third (a power law's
    exponents are whole or simple fractions: ``r**(7*pi/11)`` is ``r**2`` measured with
    noise)."""
    return [number for _, number in snap_cost(value, exponent)]


def is_plain_number(number: Any) -> bool:
    """Whether a snap candidate is a whole number or a fraction of denominator at most 12."""
    return bool(number.is_Rational and number.q <= _PLAIN_DENOMINATOR)


def snap_constants(expr, variables, x, y, rel_tol: float = 1e-3):
    """Replace floats by 0, integers, small rationals or rational multiples of pi.

    One float at a time, largest first; a replacement is kept when the RMSE on ``(x, y)`` stays
    within ``rel_tol`` (relative) of the unsnapped expression's RMSE, or within 1e-6 of the
    labels' standard deviation, whichever is larger. A number that is not plain
    (:func:`is_plain_number`) must also lie within 1e-4 of the float (relative): with noisy
    rows every float has such numbers close by, and the rows' own noise would pick one.
    """
    floats = sorted(expr.atoms(sp.Float), key=lambda f: -abs(float(f)))
    if not floats:
        return expr
    exponents = exponent_floats(expr)
    # One lambdified function with every float as an argument: trials cost no sympy work.
    params = parameter_symbols(len(floats), variables)
    fn = lambdify_by_name(expr.xreplace(dict(zip(floats, params, strict=True))), variables, params)
    xs, ys = numpy_xy(x, y)
    values = [float(f) for f in floats]
    base_rmse, _ = rmse_r2(predict_rows(fn, xs, ys.size, values), ys)
    if not math.isfinite(base_rmse):
        return expr
    # float32 data carry about 7 digits: changes below 1e-6 of the label spread cost nothing.
    spread = float(ys.std()) if ys.size > 1 else 1.0
    budget = max(base_rmse * (1 + rel_tol), base_rmse + 1e-6 * spread)
    snapped = {}
    for k, f in enumerate(floats):
        for cand in snap_candidates(values[k], exponent=f in exponents):
            far = abs(float(cand) - values[k]) > _FANCY_AGREEMENT * abs(values[k])
            if far and not is_plain_number(cand):
                continue
            trial = values[:k] + [float(cand)] + values[k + 1 :]
            rmse, _ = rmse_r2(predict_rows(fn, xs, ys.size, trial), ys)
            if math.isfinite(rmse) and rmse <= budget:
                values, snapped[f] = trial, cand
                break
    return expr.xreplace(snapped)


def coefficients_as_floats(expr):
    """``expr`` with the numeric factor of every product that holds a float made one float:
    ``6.67e-10*m1*m2/(pi**2*r**2)`` -> ``6.75e-11*m1*m2/r**2``. A number snapped in rescaled
    units, times the scales' powers of ten, is no simple number in the data's units; as one
    float it is refitted and snapped again there."""

    def collapse(node):
        if not node.is_Mul:
            return node
        number, rest = node.as_independent(*node.free_symbols, as_Add=False)
        if number == 1 or not number.atoms(sp.Float) or not number.is_number:
            return node
        value = complex(number.evalf())
        if value.imag != 0 or not math.isfinite(value.real):
            return node
        return sp.Float(value.real) * rest

    return expr.replace(lambda e: e.is_Mul, collapse)


def exponent_floats(expr) -> set:
    """The floats of ``expr`` that stand as the exponent of a power (and nowhere else)."""
    exponents = {p.exp for p in expr.atoms(sp.Pow) if p.exp.is_Float}
    elsewhere = {
        f
        for node in sp.preorder_traversal(expr)
        if not node.is_Pow
        for f in node.args
        if f.is_Float
    }
    return exponents - elsewhere


# Cheap, predictable rewrites. sympy's ``simplify`` is not used: its trigonometric pass took
# 69 s on a 4-edge formula with float constants (Feynman I.6.20a) and has no time bound.
def _powsimp(e):
    return sp.powsimp(e, combine="all")


def _logcombine(e):
    return sp.logcombine(e, force=True)


def _expand(e):
    return sp.expand(e, deep=False)


_REWRITES = (sp.cancel, sp.together, sp.factor_terms, _powsimp, _logcombine, _expand)


_EXPANDING = (sp.cancel, sp.together, _expand)  # these multiply powers of sums out


_MAX_EXPANDED_POWER = 6
# The most a law of the 117 Feynman equations holds is 9 (eq. 5's G, m1, m2 and six
# coordinates); cancel's polynomial gcd over a dozen is exponential in them.
_MAX_GENERATORS = 10


def polynomial_generators(expr) -> set:
    """What ``cancel`` would treat as variables, counted generously: the symbols, every
    function (nested ones too), pi and E, and roots of numbers."""
    found = set(expr.free_symbols) | set(expr.atoms(sp.Function)) | set(expr.atoms(sp.NumberSymbol))
    return found | {p for p in expr.atoms(sp.Pow) if p.base.is_number and not p.exp.is_Integer}


def expansion_risk(expr) -> bool:
    """Whether multiplying ``expr`` out could run without bound: a power of a sum above the
    6th, whole or not (``(...)**(189/2)`` is ``sqrt(...)**189`` to ``cancel``), or more than
    10 :func:`polynomial_generators` (a fit of noisy labels with ``exp(-5)``, ``exp(-9/2)``,
    ``sqrt(pi)``, three logs and a ``tanh`` over a squared sum held ``cancel`` for minutes)."""
    return len(polynomial_generators(expr)) > _MAX_GENERATORS or any(
        p.base.is_Add and p.exp.is_Rational and abs(p.exp) > _MAX_EXPANDED_POWER
        for p in expr.atoms(sp.Pow)
    )


def simplify_expression(expr):
    """Apply each rewrite in turn, keeping its result when it has fewer operations.

    Cancels common factors, combines fractions, powers and logs, pulls out common terms and
    multiplies out products where that is shorter. Expressions of 60 operations or more are
    returned as they are (such formulas are not read anyway, and the rewrites grow costly).
    """
    best_ops = sp.count_ops(expr)
    if best_ops >= 60:
        return expr
    # Multiplying out a high power of a sum has no time bound: a log route's formula mapped back
    # as (a + b + c)**75 held a bench worker in sp.cancel for half an hour and 9 GB.
    risky = expansion_risk(expr)
    # logcombine asks sympy whether every factor is real, and on a log inside another function
    # (tanh(log(...) + ...)) that question multiplied out powers for half an hour (bench eq. 79).
    logs = expr.atoms(sp.log)
    combinable = len(logs) >= 2 and all(
        isinstance(f, (sp.log, sp.exp)) for f in expr.atoms(sp.Function)
    )
    for rewrite in _REWRITES:
        if (risky and rewrite in _EXPANDING) or (rewrite is _logcombine and not combinable):
            continue
        try:
            candidate = rewrite(expr)
        except Exception:  # sympy can fail on odd expressions; the current one is still right
            continue
        ops = sp.count_ops(candidate)
        if ops < best_ops:
            expr, best_ops = candidate, ops
    return expr


def _unit_power_bases(expr):
    """Pull the largest coefficient out of every power of a sum: ``4336*(0.0152 u + 0.0304 w)**2``
    becomes ``1.0*(1.0 u + 2.0 w)**2``, whose numbers snap (the same value, another form)."""

    def unit(power):
        base, exponent = power.args
        coefficient = max((abs(term.as_coeff_Mul()[0]) for term in base.args), key=float)
        if not (coefficient.is_Float and 0 < float(coefficient) != 1.0):
            return power
        return coefficient**exponent * sp.expand(base / coefficient) ** exponent

    return expr.replace(lambda e: e.is_Pow and e.args[0].is_Add and e.args[1].is_Number, unit)


def formula_complexity(expr) -> int:
    """Nodes of the expression tree: sympy's operation count plus symbols and numbers."""
    return int(sp.count_ops(expr, visual=False)) + len(expr.atoms(sp.Symbol, sp.Number))


def finish_expression(expr, symbols, x: torch.Tensor, y: torch.Tensor):
    """Snap, simplify, and snap again on the rows ``x (n, d)``, ``y (n, 1)`` (validation rows):
    simplification exposes new numbers (expanded products). Last, roots of one degree are
    taken together where that is shorter and gives the same values on those rows."""
    expr = snap_constants(_unit_power_bases(expr), symbols, x, y)
    expr = simplify_expression(expr)
    expr = snap_constants(expr, symbols, x, y)
    merged = _common_roots(expr)
    if formula_complexity(merged) < formula_complexity(expr) and _same_values(
        merged, expr, symbols, x
    ):
        return merged
    return expr


def _common_roots(expr):
    """Each product's roots of one degree as one root: ``sqrt(a)*sqrt(b)/sqrt(c)`` becomes
    ``sqrt(a*b/c)``. sympy does not do this for real symbols, since it is true only where the
    bases are not negative: :func:`finish_expression` checks it on the rows."""

    def merge(product):
        kept, roots = [], {}
        for factor in product.args:
            if factor.is_Pow and factor.exp.is_Rational and not factor.exp.is_Integer:
                roots.setdefault(factor.exp.q, []).append(factor)
            else:
                kept.append(factor)
        for degree, factors in roots.items():
            if len(factors) < 2:
                kept += factors
                continue
            inside = sp.Mul(*(f.base ** (f.exp * degree) for f in factors))
            kept.append(sp.Pow(inside, sp.Rational(1, degree)))
        return sp.Mul(*kept)

    try:
        return expr.replace(lambda e: e.is_Mul, merge)
    except Exception:  # noqa: BLE001 - sympy can fail on odd expressions; keep the one we have
        return expr


def _same_values(one, other, symbols, x: torch.Tensor) -> bool:
    """Whether two expressions give the same finite values on the rows ``x (n, d)``."""
    xs = x.detach().double().numpy()
    a = predict_rows(lambdify_by_name(one, symbols), xs, len(xs))
    b = predict_rows(lambdify_by_name(other, symbols), xs, len(xs))
    return bool(
        np.all(np.isfinite(a))
        and np.all(np.isfinite(b))
        and np.allclose(a, b, rtol=1e-10, atol=0.0)
    )


def numpy_xy(x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, d)`` and ``y (n,)`` as float64 arrays."""
    return (
        x.detach().cpu().numpy().astype(np.float64),
        y.detach().cpu().numpy().astype(np.float64)[:, 0],
    )


def rmse_r2(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(RMSE, R^2) of predictions ``(n,)``; NaN when any prediction is not finite."""
    if not np.isfinite(pred).all():
        return math.nan, math.nan
    with np.errstate(over="ignore"):  # a wild candidate's error overflows to inf: it just loses
        mse = float(np.mean((pred - y) ** 2))
    var = float(np.var(y))
    r2 = 1.0 - mse / var if var > 0 else (1.0 if mse == 0 else -math.inf)
    return math.sqrt(mse), r2
