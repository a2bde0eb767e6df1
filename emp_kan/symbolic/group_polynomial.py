"""Sparse polynomials and ratios of dimensionless groups, fitted on the label in its own units.

With units, a law is ``y = N(x) * F(pi(x))`` (:mod:`emp_kan.data.groups`). The KAN learns
``F`` from ``y / N``, whose noise is the label's divided by ``|N|``: rows where ``N`` is small
carry the most, and at 1% label noise they swamp the law (eq. 99 of the Feynman list, ``-m*q**4
/(32*pi**2*epsilon**2*hbar**2*n**2)``). Here ``F`` is sought among sparse Laurent polynomials of
the groups, some terms times a function of one group (:func:`group_columns`), fitted on ``y``
itself: ``y = sum_k c_k * N(x) * m_k(pi(x))`` is linear in the ``c_k``, so least squares on
``y`` weighs every row by the noise it really has. Through the transforms of
:data:`~emp_kan.symbolic.polynomial.POLYNOMIAL_TRANSFORMS`, ``y**2``, ``1/y`` and ``1/y**2``
are ``N**2``, ``1/N`` and ``1/N**2`` times such a polynomial (``m0*v/sqrt(1 - v**2/c**2)`` is
``1/y**2 = (1/(m0*v)**2) * (1 - 1/pi**2)`` with ``pi = c/v``), ``log|y|`` is ``log|N|`` plus
one (a Gaussian), ``sin(y)`` or ``cos(y)`` of a dimensionless angle is one (``asin(lambda/(d*n))``),
and a ratio ``P / (1 - R)`` of two is linear in both once multiplied out.
With no group at all, ``F`` is a constant and the law is ``C * N(x)``. Every formula found
this way is dimensionally homogeneous.

The maths here is pure: arrays in, :class:`GroupPolynomialFit` out."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import numpy as np
import sympy as sp

from emp_kan.symbolic.choice import noise_floor, noise_tie
from emp_kan.symbolic.polynomial import (
    DROP_REL_TOL,
    POLYNOMIAL_TRANSFORMS,
    _backward_path,
    _forward_path,
)

__all__ = [
    "GroupPolynomialFit",
    "group_columns",
    "group_polynomial_expression",
    "group_polynomials",
]

# The power of N(x) each transform of y carries: g(y) = N**power * F'(groups); "log" is
# log|y| = log|N| + P(groups), the law N * exp(P); "sine" and "cosine" take a dimensionless
# angle (N = 1) to P(groups), the law asin(P) or acos(P).
NORMALISER_POWER = {
    "identity": 1,
    "square": 2,
    "reciprocal": -1,
    "inverse-square": -2,
    "log": 0,
    "sine": 0,
    "cosine": 0,
}

# The transforms of an angle: each one's range of y, where its inverse gives y back.
_ANGLES = {"sine": (-math.pi / 2, math.pi / 2), "cosine": (0.0, math.pi)}

# How far beyond its range, as a share of the range's width, an angle's label may lie.
ANGLE_MARGIN = 0.05

# The transforms with a root, whose sign must be known on the rows (see _root_sign), and log.
_SIGNED = ("square", "inverse-square", "log")

# Most columns of the term set (monomials of the groups, and functions of one group, or of
# the difference of two, times monomials of the others).
MAX_COLUMNS = 600

# Highest sum of the absolute exponents of a monomial (1/pi**2 and pi_1*pi_2 are 2).
MAX_DEGREE = 4

# Most terms of a polynomial (a squared distance in three groups has six).
MAX_TERMS = 6

# Most supports of one shape that _small_ratios tries.
MAX_RATIO_SUPPORTS = 200_000

# How a root's sign is known (GroupPolynomialFit.root; a group's index otherwise).
_OF_SHAPE, _OF_LABEL, _OF_FACTOR = -1, -2, -3

# Most swaps that improve a forward support (_swapped).
MAX_SWAPS = 4

# Share of the sum of |y| whose sign a root's sign must match (noise flips labels near 0).
SIGN_AGREEMENT = 0.99


def _arcsin(t: np.ndarray) -> np.ndarray:
    return np.arcsin(np.clip(t, -1.0, 1.0))


def _arccos(t: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip(t, -1.0, 1.0))


# name: (forward g on numpy, inverse on sympy of g's formula u and the sign, inverse on numpy)
_TRANSFORMS = {
    **{name: (t[1], t[2], t[3]) for name, t in POLYNOMIAL_TRANSFORMS.items()},
    "log": (
        lambda y: np.log(np.abs(y)),
        lambda u, sign: sign * sp.exp(u),
        lambda t, sign: sign * np.exp(t),
    ),
    # a polynomial a rounding past +-1 on a row measures there as the range's end
    "sine": (np.sin, lambda u, sign: sp.asin(u), lambda t, sign: _arcsin(t)),
    "cosine": (np.cos, lambda u, sign: sp.acos(u), lambda t, sign: _arccos(t)),
}

_FUNCTIONS = {
    "sin": (np.sin, sp.sin),
    "cos": (np.cos, sp.cos),
    "sin2": (lambda v: np.sin(v) ** 2, lambda v: sp.sin(v) ** 2),
    "exp": (np.exp, sp.exp),
    "tanh": (np.tanh, sp.tanh),
    "log": (lambda v: np.log(np.abs(v)), lambda v: sp.log(sp.Abs(v))),
    "square": (np.square, lambda v: v**2),
}


@dataclass(frozen=True)
class GroupPolynomialFit:
    """``g(y) = N(x)**p * P(groups) / (1 - R(groups))`` with ``g`` the transform and ``p`` its
    :data:`NORMALISER_POWER`, so that ``y = N * g^-1(P / (1 - R))``; ``P = sum_k
    coefficients[k] * column[support[k]]`` and ``R`` the same over ``denominator`` (empty: a
    polynomial). Column ``j`` is ``prod_i pi_i ** exponents[j, i]``, times the function
    ``trig[j]`` names where it is not None (see :func:`group_columns`). ``val_rmse`` is of
    ``y`` on the validation rows.

    A root (of ``y**2`` and ``1/y**2``) takes the sign of ``y / N`` where that keeps one sign
    (``root`` -1); else of ``y``, as ``y = sign * sqrt(N**2 * P / (1 - R))`` (``root`` -2,
    where ``N`` changes sign and ``y`` does not); else ``N`` is ``N * pi_root`` (also of
    ``y``'s units), whose ratio to ``y`` keeps one sign. Where none does, ``root`` -3: ``y =
    N * P / sqrt(1 - R)``, ``P`` the polynomial whose square ``y**2 / N**2`` was found to
    hold over ``1 - R``, carrying the sign (see ``_factored_root``)."""

    transform: str
    exponents: np.ndarray  # (m, k) ints
    trig: tuple
    support: tuple[int, ...]
    coefficients: np.ndarray  # (len(support),)
    val_rmse: float
    sign: float = 1.0  # of y / N, or of y or y / (N * pi_root) (see root)
    root: int = -1  # how a root's sign is known: _OF_SHAPE, _OF_LABEL or a group's index
    denominator: tuple[int, ...] = ()
    denominator_coefficients: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_terms(self) -> int:
        return len(self.support) + len(self.denominator)


def group_columns(n_groups: int, max_columns: int = MAX_COLUMNS) -> tuple[np.ndarray, tuple]:
    """The term set over ``n_groups`` groups: ``(exponents (m, n_groups), trig (m,))``.

    The constant, then every monomial with exponents -2..2 (-1..1 when those are more than
    ``max_columns``) and absolute degree up to :data:`MAX_DEGREE`; then ``sin`` and ``cos``,
    then ``sin**2``, ``exp``, ``tanh`` and ``log|.|`` of each group times the monomials of the
    others with exponents -1..1 and absolute degree up to 2 (``alpha*cos(omega*t)**2``,
    ``sin(theta)**2``, ``log|sigma|``); then ``sin`` and ``cos`` of the difference of two
    groups times the monomials of the others of absolute degree up to 1
    (``alpha*cos(theta_1 - theta_2)``), and its square times those of exponents -2..2 and
    absolute degree up to 2 (``(theta - theta_1)**2/sigma**2``); as long as the set stays
    within ``max_columns``. With no group, the constant alone. ``trig[j]`` is None, or
    ``(name, i)`` for ``name(pi_i)``, or ``(name, i, j)`` for ``name(pi_i - pi_j)``.
    """

    def degree(r: tuple[int, ...]) -> tuple:
        return (sum(abs(e) for e in r), r)

    rows: list[tuple[int, ...]] = []
    for powers in ((-2, -1, 0, 1, 2), (-1, 0, 1)):
        rows = [
            r
            for r in itertools.product(powers, repeat=n_groups)
            if sum(abs(e) for e in r) <= MAX_DEGREE
        ]
        if len(rows) <= max_columns:
            break
    rows = sorted(rows, key=degree)[:max_columns]
    trig: list = [None] * len(rows)
    extra: list[tuple[tuple[int, ...], tuple]] = []
    for names in (("sin", "cos"), ("sin2", "exp", "tanh", "log")):
        for i in range(n_groups):
            others = [
                r
                for r in itertools.product((-1, 0, 1), repeat=n_groups)
                if r[i] == 0 and sum(abs(e) for e in r) <= 2
            ]
            extra += [(r, (name, i)) for r in sorted(others, key=degree) for name in names]
    for i, j in itertools.combinations(range(n_groups), 2):
        others = [
            r
            for r in itertools.product((-1, 0, 1), repeat=n_groups)
            if r[i] == r[j] == 0 and sum(abs(e) for e in r) <= 1
        ]
        extra += [(r, (name, i, j)) for r in sorted(others, key=degree) for name in ("sin", "cos")]
        # a squared difference over a squared width: the exponent of a Gaussian
        widths = [
            r
            for r in itertools.product((-2, -1, 0, 1, 2), repeat=n_groups)
            if r[i] == r[j] == 0 and sum(abs(e) for e in r) <= 2
        ]
        extra += [(r, ("square", i, j)) for r in sorted(widths, key=degree)]
    for r, t in extra[: max(0, max_columns - len(rows))]:
        rows.append(r)
        trig.append(t)
    exponents = np.array(rows, dtype=float).reshape(len(rows), n_groups)
    return exponents, tuple(trig)


def _argument(t: tuple, groups):
    """The argument of a column's function: one group, or the difference of two."""
    return groups[t[1]] if len(t) == 2 else groups[t[1]] - groups[t[2]]


def _values(exponents: np.ndarray, trig: tuple, groups: np.ndarray) -> np.ndarray:
    """The columns at ``groups (n, k)``, shape (n, m); NaN or inf where undefined."""
    with np.errstate(all="ignore"):
        out = np.prod(groups[:, None, :] ** exponents[None, :, :], axis=2)
        for j, t in enumerate(trig):
            if t is not None:
                out[:, j] *= _FUNCTIONS[t[0]][0](_argument(t, groups.T))
    return out


def group_polynomials(
    groups_fit: np.ndarray,
    normaliser_fit: np.ndarray,
    y_fit: np.ndarray,
    groups_val: np.ndarray,
    normaliser_val: np.ndarray,
    y_val: np.ndarray,
    max_terms: int = MAX_TERMS,
) -> list[GroupPolynomialFit]:
    """For each transform ``g`` of ``y`` that applies, the sparse polynomial, or ratio, of the
    groups that ``g(y) / N**p`` is, fitted on ``g(y)`` (see the module's docstring).

    A ratio ``P / (1 - R)`` is fitted as ``g(y) = N**p * P + g(y) * R``, which is linear in
    the coefficients of both (``(x - u*t)/sqrt(1 - u**2/c**2)``: ``y**2 = x**2 * (1 - pi_1)**2 +
    y**2 * pi_2**2``). The supports searched are forward selection's over the polynomial's
    columns (up to ``max_terms``; also with the constant taken first), each improved by
    swapping single columns, and backward
    elimination's from every column those took, all again among the columns without
    functions; and, where the columns are fewer than a third of the fit rows, backward
    elimination's from every polynomial column, from the monomials of absolute degree up to
    2, and, for a ratio, from those and the functions times a monomial of degree up to 2 (1
    where those are too many) in both ``P`` and ``R``; every small ratio (:func:`_small_ratios`),
    and for ``y**2`` a squared binomial over one term (:func:`_squared_ratios`). Each is fitted
    by least squares on the fit rows with no intercept (a constant of ``F`` is the column
    ``N``) and measured as ``y`` on the validation rows. Where no root's sign is known on the
    rows, ``y**2``'s best is read as ``N * Q / sqrt(1 - R)`` (:func:`_factored_root`) and the
    other roots are not fitted. ``sin(y)`` and ``cos(y)`` apply where ``N`` is 1 on every
    row and ``y`` lies within ``asin``'s or ``acos``'s range.
    The fewest terms whose validation RMSE is within 5% of the best, or within what the
    validation rows can tell apart (:func:`~emp_kan.symbolic.choice.noise_tie`), or below the
    floor of float rounding, wins; of those, the polynomial before the ratio, then the fewest
    functions, then the lowest degrees.

    Parameters
    ----------
    groups_fit : ndarray, shape (n, k)
        The groups on the fit rows (``k`` may be 0).
    normaliser_fit : ndarray, shape (n,)
        ``N(x)`` on the fit rows.
    y_fit : ndarray, shape (n,)
    groups_val, normaliser_val, y_val : ndarray, shapes (v, k), (v,), (v,)
        The same on the validation rows.
    max_terms : int

    Returns
    -------
    list of GroupPolynomialFit
        One per transform: those within the tie of the most accurate first, plainest first
        (see the order above), then the others by validation RMSE.
    """
    exponents, trig = group_columns(groups_fit.shape[1])
    m = len(trig)
    fit_columns = _values(exponents, trig, groups_fit)
    val_columns = _values(exponents, trig, groups_val)
    finite = np.isfinite(fit_columns).all(axis=0) & np.isfinite(val_columns).all(axis=0)
    if not finite.any():
        return []
    fit_columns = np.where(finite, fit_columns, 0.0)
    floor = noise_floor(float(np.std(y_val)))
    plain = finite & np.array([t is None for t in trig], dtype=bool)
    column_sets = [np.flatnonzero(keep) for keep in (finite, plain)]
    # Backward elimination from many columns needs three fit rows per column: from every
    # polynomial column where they are few enough, from the plain monomials of absolute
    # degree up to 2, and for a ratio from those and the functions times degree up to 2 (1
    # where those are too many) in both P (columns 0..m-1) and R (m..2m-1; never the
    # constant: R = 1 fits anything).
    degrees = np.abs(exponents).sum(axis=1)
    low = plain & (degrees <= 2)
    starts = [np.flatnonzero(k) for k in (finite, low) if 0 < k.sum() <= len(y_fit) // 3]
    for most in (2, 1):
        small = low | (finite & ~plain & (degrees <= most))
        ratio = np.flatnonzero(np.concatenate([small, small & (np.arange(m) > 0)]))
        if len(ratio) <= len(y_fit) // 3:
            starts.append(ratio)
            break
    # the small ratios' columns: no squared sines, functions times degree up to 1
    tiny = low | (
        finite & ~plain & (degrees <= 1) & np.array([t is None or t[0] != "sin2" for t in trig])
    )
    fits = []
    known = _root_sign(
        np.concatenate([groups_fit, groups_val]),
        np.concatenate([normaliser_fit, normaliser_val]),
        np.concatenate([y_fit, y_val]),
    )
    for name, power in NORMALISER_POWER.items():
        forward, _, inverse = _TRANSFORMS[name]
        if name in _ANGLES and not _is_angle(name, normaliser_fit, y_fit, y_val):
            continue
        mode = known if name in _SIGNED else _OF_SHAPE
        if mode is None:  # a root's sign must be known on the rows, or come from a factor
            if name != "square":
                continue
            mode = _OF_FACTOR
        n_fit, n_val = normaliser_fit, normaliser_val
        if mode >= 0:
            n_fit, n_val = n_fit * groups_fit[:, mode], n_val * groups_val[:, mode]
        # the sign of y / N, or of y itself: y**2 = N**2 * P gives y = N * sign * sqrt(P), or
        # sign * sqrt(N**2 * P) where N changes sign and y does not
        signed = y_fit if mode == _OF_LABEL else y_fit * np.sign(n_fit)
        sign = 1.0 if mode == _OF_FACTOR or np.mean(signed > 0) >= 0.5 else -1.0
        with np.errstate(all="ignore"):
            target = forward(y_fit)
            scale_fit = n_fit**power
            if name == "log":  # log|y| - log|N| = P: the normaliser leaves the columns alone
                target = target - np.log(np.abs(n_fit))
        weight = _noise_weights(name, y_fit)
        target = np.where(weight > 0, target, 0.0)  # log|y| of a label of 0 has no weight
        if not (np.isfinite(target).all() and np.isfinite(scale_fit).all()):
            continue
        # g(y) carries the label's noise times |g'(y)|: each row is weighed by its inverse
        features = np.concatenate(
            [fit_columns * (scale_fit * weight)[:, None], fit_columns * (target * weight)[:, None]],
            axis=1,
        )
        target = target * weight
        paths = []
        for columns in column_sets:  # on noisy rows sin(alpha) + cos(alpha) ties 1 + alpha
            design = features[:, columns]
            forward_paths = _forward_path(design, target, max_terms, intercept=False)
            if columns[0] == 0:  # the constant
                forward_paths += _constant_first(design, target, max_terms)
            found = [
                tuple(int(columns[j]) for j in support)
                for path in forward_paths
                for support in (path, _swapped(design, target, path))
            ]
            # and backward from every column those took: a forward search's first column may
            # be one the law does not hold, which no single swap removes
            taken = sorted({j for support in found for j in support})
            found += [
                tuple(taken[j] for j in path)
                for path in _backward_path(features[:, taken], target, max_terms, intercept=False)
            ]
            paths += found
        paths += _small_ratios(features, target, np.flatnonzero(tiny), np.flatnonzero(low), m)
        if name == "square":
            paths += _squared_ratios(
                features,
                target,
                exponents,
                np.flatnonzero(plain),
                np.flatnonzero(low),
                np.flatnonzero(tiny),
                m,
            )
        for kept in starts:
            paths += [
                tuple(int(kept[j]) for j in path)
                for path in _backward_path(features[:, kept], target, max_terms, intercept=False)
            ]
        scored = []
        for support in dict.fromkeys(tuple(sorted(p)) for p in paths):
            numerator = tuple(j for j in support if j < m)
            denominator = tuple(j - m for j in support if j >= m)
            if not numerator or (denominator and name == "log"):  # exp(P) of a ratio: no
                continue
            coefficients, *_ = np.linalg.lstsq(features[:, support], target, rcond=None)
            c_num, c_den = coefficients[: len(numerator)], coefficients[len(numerator) :]
            with np.errstate(all="ignore"):
                inner = (val_columns[:, numerator] @ c_num) / (
                    1.0 - val_columns[:, denominator] @ c_den
                )
                if mode == _OF_LABEL and name == "log":
                    predicted = np.abs(n_val) * inverse(inner, sign)
                elif mode == _OF_LABEL:
                    predicted = inverse(n_val**power * inner, sign)
                elif mode == _OF_FACTOR:  # the size alone: the sign comes with Q
                    predicted = np.abs(n_val * inverse(inner, sign)) * np.sign(y_val)
                else:
                    predicted = n_val * inverse(inner, sign)
                rmse = float(np.sqrt(np.mean((predicted - y_val) ** 2)))
            if math.isfinite(rmse):
                scored.append(
                    GroupPolynomialFit(
                        name,
                        exponents,
                        trig,
                        numerator,
                        c_num,
                        rmse,
                        sign,
                        mode,
                        denominator,
                        c_den,
                    )
                )
        if scored:
            best = _plainest_tied(scored, len(y_val), floor)
            if mode == _OF_FACTOR:
                best = _factored_root(
                    best,
                    (fit_columns, val_columns),
                    np.flatnonzero(plain),
                    (n_fit, n_val),
                    (y_fit, y_val),
                    max_terms,
                    floor,
                )
            if best is not None:
                fits.append(best)
    if not fits:
        return []
    # across transforms too, the rows cannot tell apart fits within the tie of the best
    allowed = _tie(fits, len(y_val), floor)
    return sorted(fits, key=lambda f: (f.val_rmse > allowed, _plainness(f)))


def _plainest_tied(fits: list[GroupPolynomialFit], n_val: int, floor: float) -> GroupPolynomialFit:
    """The plainest (:func:`_plainness`) of ``fits`` that tie with the most accurate."""
    allowed = _tie(fits, n_val, floor)
    return min((f for f in fits if f.val_rmse <= allowed), key=_plainness)


def _tie(fits: list[GroupPolynomialFit], n_val: int, floor: float) -> float:
    """The validation RMSE up to which ``fits`` tie with the most accurate: within 5% of it,
    within what ``n_val`` rows can tell apart (:func:`~emp_kan.symbolic.choice.noise_tie`),
    or below the floor of float rounding."""
    best = min(f.val_rmse for f in fits)
    return max(best * (1 + DROP_REL_TOL), noise_tie([best], n_val), floor)


def group_polynomial_expression(
    fit: GroupPolynomialFit, group_symbols: list, normaliser: sp.Expr
) -> sp.Expr:
    """``fit`` as a sympy expression of ``y``: ``group_symbols`` stand for the groups (replace
    them by their monomials to read it in the inputs) and ``normaliser`` is ``N``."""
    if fit.root >= 0:
        normaliser = normaliser * group_symbols[fit.root]

    def column(j: int) -> sp.Expr:
        term = sp.Mul(
            *(s ** int(e) for s, e in zip(group_symbols, fit.exponents[j], strict=True) if e)
        )
        t = fit.trig[j]
        if t is not None:
            term *= _FUNCTIONS[t[0]][1](_argument(t, group_symbols))
        return term

    def combination(columns: tuple[int, ...], coefficients: np.ndarray) -> sp.Expr:
        return sp.Add(
            *(sp.Float(float(c)) * column(j) for j, c in zip(columns, coefficients, strict=True))
        )

    numerator = combination(fit.support, fit.coefficients)
    denominator = 1 - combination(fit.denominator, fit.denominator_coefficients)
    if fit.root == _OF_FACTOR:
        return normaliser * numerator / sp.sqrt(denominator)
    ratio = numerator / denominator
    inverse = _TRANSFORMS[fit.transform][1]
    if fit.root == _OF_LABEL and fit.transform == "log":
        return sp.Abs(normaliser) * inverse(ratio, int(fit.sign))
    if fit.root == _OF_LABEL:
        return inverse(normaliser ** NORMALISER_POWER[fit.transform] * ratio, int(fit.sign))
    return normaliser * inverse(ratio, int(fit.sign))


def _factored_root(
    fit: GroupPolynomialFit,
    columns: tuple[np.ndarray, np.ndarray],
    plain: np.ndarray,
    normaliser: tuple[np.ndarray, np.ndarray],
    y: tuple[np.ndarray, np.ndarray],
    max_terms: int,
    floor: float,
) -> GroupPolynomialFit | None:
    """``y = N * Q / sqrt(1 - R)`` from ``fit``, a fit of ``y**2 = N**2 * P / (1 - R)`` whose
    root has no sign of its own on the rows: ``P`` is ``Q**2``, and ``Q``, a sparse
    polynomial among the ``plain`` columns, carries the sign. With ``R`` known the law is
    linear in ``Q``'s coefficients, fitted on ``y`` itself. ``(x - u*t)/sqrt(1 - u**2/c**2)``
    with ``pi_1 = u/c`` and ``pi_2 = c*t/x``: ``y / x`` takes both signs, and ``Q`` is ``1 -
    pi_1*pi_2``.

    ``columns``, ``normaliser`` and ``y`` are pairs of the fit rows' and the validation
    rows' values (shapes ``(n, m)``, ``(n,)``, ``(n,)`` and the same with ``v``). None where
    ``1 - R`` is not positive on every row, or no ``Q`` is found."""
    roots = []
    for values in columns:
        with np.errstate(all="ignore"):
            roots.append(np.sqrt(1.0 - values[:, fit.denominator] @ fit.denominator_coefficients))
    if not all(np.isfinite(r).all() and (r > 0).all() for r in roots):
        return None
    # y = N * Q / sqrt(1 - R): Q's columns, each times N / sqrt(1 - R)
    design = columns[0][:, plain] * (normaliser[0] / roots[0])[:, None]
    paths = _forward_path(design, y[0], max_terms, intercept=False)
    if plain[0] == 0:  # the constant
        paths += _constant_first(design, y[0], max_terms)
    scored = []
    for path in dict.fromkeys(paths):
        support = tuple(int(plain[j]) for j in path)
        coefficients, *_ = np.linalg.lstsq(design[:, list(path)], y[0], rcond=None)
        predicted = normaliser[1] * (columns[1][:, support] @ coefficients) / roots[1]
        rmse = float(np.sqrt(np.mean((predicted - y[1]) ** 2)))
        if math.isfinite(rmse):
            scored.append(
                replace(
                    fit,
                    support=support,
                    coefficients=coefficients,
                    val_rmse=rmse,
                    sign=1.0,
                    root=_OF_FACTOR,
                )
            )
    return _plainest_tied(scored, len(y[1]), floor) if scored else None


def _constant_first(features: np.ndarray, target: np.ndarray, max_terms: int) -> list[tuple]:
    """Forward selection over ``features (n, m)``, whose column 0 is the constant, with the
    constant taken first: the supports of 2..``max_terms`` columns. Unforced, a forward
    search takes ``sigma`` for ``log(sigma)`` plus a constant (a Gaussian's ``log|y|``), and
    no single swap brings both back."""
    norm = float(np.linalg.norm(features[:, 0]))
    if features.shape[1] < 2 or norm == 0:
        return []
    q = features[:, 0] / norm
    rest = features[:, 1:]
    projected = rest - np.outer(q, q @ rest)
    residual = target - q * float(q @ target)
    return [
        (0, *(j + 1 for j in path))
        for path in _forward_path(projected, residual, max_terms - 1, intercept=False)
    ]


# A column past 1e154 (exp of a large group) overflows its squared norm: inf marks it not
# usable, which is what it is, without a warning.
@np.errstate(over="ignore", invalid="ignore")
def _swapped(features: np.ndarray, target: np.ndarray, support: tuple[int, ...]) -> tuple:
    """``support`` improved by swaps: while replacing one of its columns of ``features (n,
    m)`` by another lowers the least-squares residual of ``target (n,)`` (no intercept), the
    best such swap is made (at most :data:`MAX_SWAPS`). Forward selection over correlated
    columns takes a wrong one early and keeps it (``alpha**2`` and ``cos(alpha)`` for a
    constant). Each position's best replacement is read off the residual and the columns
    projected away from the rest of the support."""
    scale = np.linalg.norm(features, axis=0)
    current = list(support)

    def projected(rest: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if not rest:
            return target, features
        q, _ = np.linalg.qr(features[:, rest])
        return target - q @ (q.T @ target), features - q @ (q.T @ features)

    residual, _ = projected(current)
    best = float(residual @ residual)
    for _ in range(MAX_SWAPS):
        trial = None
        for position in range(len(current)):
            rest = current[:position] + current[position + 1 :]
            left, columns = projected(rest)
            norms = (columns * columns).sum(axis=0)
            # a column (nearly) in the span of the rest adds nothing but ill-conditioning
            usable = norms > 1e-16 * np.maximum(scale**2, 1e-300)
            usable[current] = False
            if not usable.any():
                continue
            gains = np.where(usable, (left @ columns) ** 2 / np.where(usable, norms, 1.0), -1.0)
            column = int(np.argmax(gains))
            value = float(left @ left) - float(gains[column])
            if value < best * (1 - 1e-9):
                best, trial = value, [*rest[:position], column, *rest[position:]]
        if trial is None:
            break
        current = trial
    return tuple(current)


def _small_ratios(
    features: np.ndarray,
    target: np.ndarray,
    columns: np.ndarray,
    plain: np.ndarray,
    m: int,
    keep: int = 8,
) -> list[tuple[int, ...]]:
    """The ``keep`` best supports of each small ratio shape, by their least-squares residual
    of ``target (n,)``: one column of ``P`` over one of ``R``, both among ``columns``; two of
    ``P`` over one, all among ``columns``, and again with ``P``'s among ``plain`` (when the
    former are too many); one over two; two over two
    (``features (n, 2m)`` holds ``P``'s columns then ``R``'s; ``columns`` and ``plain`` are
    indices below ``m``). A shape with more than :data:`MAX_RATIO_SUPPORTS` supports is
    skipped.

    A forward search takes ``R``'s columns first (``y * pi`` is much like ``y`` itself), and
    backward elimination from many columns on noisy rows drops the ratio's few; the supports
    of a small ratio are few enough to try all: ``(m1*r1 + m2*r2)/(m1 + m2)`` is ``r2 * (1 +
    pi_1*pi_2) / (1 + pi_1)``, ``d*(1 - alpha**2)/(1 + alpha*cos(theta_1 - theta_2))`` two
    monomials over one term with a function, and ``cos(y) = (cos(theta) - pi)/(1 -
    pi*cos(theta))`` (relativistic aberration) two terms, one with a function, over one."""
    pool = sorted({int(j) for j in (*columns, *plain)})
    chosen = np.array(pool + [j + m for j in pool if j > 0])
    position = {int(j): k for k, j in enumerate(chosen)}
    gram, right = _gram(features[:, chosen], target)
    wide_p = [position[int(j)] for j in columns]
    wide_r = [position[int(j) + m] for j in columns if j > 0]
    plain_p = [position[int(j)] for j in plain]
    plain_r = [position[int(j) + m] for j in plain if j > 0]
    shapes = (
        (wide_p, 1, wide_r, 1),
        (wide_p, 2, wide_r, 1),
        (plain_p, 2, wide_r, 1),
        (wide_p, 1, plain_r, 2),
        (plain_p, 2, plain_r, 2),
    )
    out: list[tuple[int, ...]] = []
    for p_pool, p_size, r_pool, r_size in shapes:
        count = math.comb(len(p_pool), p_size) * math.comb(len(r_pool), r_size)
        if not count or count > MAX_RATIO_SUPPORTS:
            continue
        p_rows = np.array(list(itertools.combinations(p_pool, p_size)))
        r_rows = np.array(list(itertools.combinations(r_pool, r_size)))
        supports = np.concatenate(
            [np.repeat(p_rows, len(r_rows), axis=0), np.tile(r_rows, (len(p_rows), 1))], axis=1
        )
        out += [tuple(int(chosen[j]) for j in row) for row in _best(gram, right, supports, keep)]
    return out


def _gram(columns: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Gram matrix ``(m, m)`` of ``columns (n, m)`` scaled to unit norm, and their inner
    products ``(m,)`` with ``target (n,)``."""
    norms = np.linalg.norm(columns, axis=0)
    unit = columns / np.where(norms > 0, norms, 1.0)
    return unit.T @ unit, unit.T @ target


def _best(gram: np.ndarray, right: np.ndarray, supports: np.ndarray, keep: int) -> np.ndarray:
    """The ``keep`` rows of ``supports (s, k)`` (indices into ``gram (m, m)``) whose columns
    explain most of the target by least squares, best first, all solved at once."""
    blocks = gram[supports[:, :, None], supports[:, None, :]]
    # a determinant near 0 is a nearly collinear support, which fits anything
    usable = np.linalg.det(blocks) > 1e-8
    supports, blocks = supports[usable], blocks[usable]
    if not len(supports):
        return supports
    rights = right[supports]
    explained = np.einsum("ki,ki->k", rights, np.linalg.solve(blocks, rights[:, :, None])[..., 0])
    return supports[np.argsort(-explained)[:keep]]


def _squared_ratios(
    features: np.ndarray,
    target: np.ndarray,
    exponents: np.ndarray,
    plain: np.ndarray,
    low: np.ndarray,
    columns: np.ndarray,
    m: int,
    keep: int = 8,
) -> list[tuple[int, ...]]:
    """The ``keep`` best supports of ``Q**2 / (1 - R)`` by their least-squares residual of
    ``target (n,)``: ``Q`` two monomials among ``low``, so ``P = Q**2`` the three among
    ``plain`` of exponents ``2a``, ``a + b`` and ``2b``; ``R`` one column among ``columns``
    (``features (n, 2m)`` holds ``P``'s columns then ``R``'s). ``y**2`` of ``(t -
    u*x/c**2)/sqrt(1 - u**2/c**2)`` is ``t**2 * (1 - pi_1*pi_2)**2 / (1 - pi_1**2)``: four
    terms, of which ``pi_1**2*pi_2**2`` has degree 4 and is found by no small ratio."""
    index = {tuple(exponents[j]): int(j) for j in plain}
    numerators = []
    for a, b in itertools.combinations(low, 2):
        keys = (
            tuple(2 * exponents[a]),
            tuple(exponents[a] + exponents[b]),
            tuple(2 * exponents[b]),
        )
        if all(k in index for k in keys):
            numerators.append([index[k] for k in keys])
    r_pool = [int(j) + m for j in columns if j > 0]
    if not numerators or not r_pool or len(numerators) * len(r_pool) > MAX_RATIO_SUPPORTS:
        return []
    supports = np.concatenate(
        [
            np.repeat(np.array(numerators), len(r_pool), axis=0),
            np.tile(np.array(r_pool)[:, None], (len(numerators), 1)),
        ],
        axis=1,
    )
    chosen = np.unique(supports)
    gram, right = _gram(features[:, chosen], target)
    best = _best(gram, right, np.searchsorted(chosen, supports), keep)
    return [tuple(int(chosen[j]) for j in row) for row in best]


def _plainness(fit: GroupPolynomialFit) -> tuple:
    """Fewest terms first, then a polynomial before a ratio, then ``y`` before its transforms
    (in :data:`NORMALISER_POWER`'s order), then fewest functions, then the lowest degrees:
    among fits that tie on noisy rows, ``1 - pi**2`` rather than ``cos(pi) - pi**2/2``."""
    columns = fit.support + fit.denominator
    return (
        fit.n_terms,
        len(fit.denominator),
        list(NORMALISER_POWER).index(fit.transform),
        sum(fit.trig[j] is not None for j in columns),
        float(sum(np.abs(fit.exponents[j]).sum() for j in columns)),
        fit.val_rmse,
    )


def _noise_weights(transform: str, y: np.ndarray) -> np.ndarray:
    """``1 / |g'(y)|`` per row ``(n,)`` for ``transform`` ``g`` (up to a constant), from the
    observed labels: ``1/y**2`` of a label near 0 is mostly noise, and ``y**2`` there is known
    best. Below the tenth percentile of ``|y|`` the observed label may be noise alone: there
    ``y**2``'s weight stops growing, and ``1/y`` and ``1/y**2`` get none (a label of pure
    noise where the law is near 0 would pull the fit by more than every other row)."""
    magnitude = np.abs(y)
    small = max(float(np.percentile(magnitude, 10)), 1e-300)
    if transform == "square":
        return 1.0 / np.maximum(magnitude, small)
    if transform == "reciprocal":
        return np.where(magnitude > small, magnitude**2, 0.0)
    if transform == "inverse-square":
        return np.where(magnitude > small, magnitude**3, 0.0)
    if transform == "log":
        return np.where(magnitude > small, magnitude, 0.0)
    if transform in _ANGLES:  # |g'(y)| is |cos(y)| or |sin(y)|, 0 at the range's ends
        slope = np.abs(np.cos(y) if transform == "sine" else np.sin(y))
        return 1.0 / np.maximum(slope, max(float(np.percentile(slope, 10)), 1e-300))
    return np.ones_like(magnitude)


def _is_angle(transform: str, normaliser: np.ndarray, y_fit: np.ndarray, y_val: np.ndarray) -> bool:
    """Whether ``y`` is a dimensionless angle (``N = 1`` on every row) within the range on
    which ``transform``'s inverse gives it back (``asin`` ``[-pi/2, pi/2]``, ``acos`` ``[0,
    pi]``), on the fit rows ``(n,)`` and the validation rows ``(v,)``; labels up to
    :data:`ANGLE_MARGIN` of the range's width beyond its ends count as within (noise carries
    a law's 0 below 0)."""
    low, high = _ANGLES[transform]
    margin = ANGLE_MARGIN * (high - low)
    labels = np.concatenate([y_fit, y_val])
    inside = labels.min() >= low - margin and labels.max() <= high + margin
    return bool(np.all(normaliser == 1.0) and inside)


def _root_sign(groups: np.ndarray, normaliser: np.ndarray, y: np.ndarray) -> int | None:
    """How a root's sign is known on rows of ``groups (n, k)``, ``normaliser (n,)`` and ``y
    (n,)`` (see :class:`GroupPolynomialFit`'s ``root``): ``y / N`` keeps one sign, else ``y``
    does, else ``y / (N * pi_i)`` does for the first group ``i`` that makes it; None when none
    does. "Keeps one sign" allows rows of the other sign that hold at most ``1 -
    SIGN_AGREEMENT`` of the sum of ``|y|``: noise flips labels near 0."""
    shape = y * np.sign(normaliser)
    total = float(np.abs(y).sum())

    def one_sign(values: np.ndarray) -> bool:
        mass = max(float(values[values > 0].sum()), float(-values[values < 0].sum()))
        return total > 0 and mass >= SIGN_AGREEMENT * total

    if one_sign(shape):
        return _OF_SHAPE
    if one_sign(y):
        return _OF_LABEL
    return next(
        (i for i in range(groups.shape[1]) if one_sign(shape * np.sign(groups[:, i]))), None
    )
