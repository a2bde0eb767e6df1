"""Sparse polynomials of the inputs fitted to the labels and to transforms of them.

Sums of products (``x1*y1 + x2*y2 + x3*y3``), a factor times a sum of squares
(``m*(u**2 + v**2 + w**2)/2``) and roots of squared distances
(``sqrt((x2 - x1)**2 + (y2 - y1)**2)``, a polynomial once squared) need more hidden nodes than
a small sum-KAN has, so its splines never fit them and nothing read from it can be the law.
They are linear in a few monomials of the inputs (possibly times ``sin`` or ``cos`` of one
input or of a difference of two: ``q*E_f + q*B*v*sin(theta)``), so backward elimination and
forward selection over monomials find them in a fraction of a second. This is AI Feynman's
polynomial fit of ``y``, ``y**2``, ``1/y`` and ``1/y**2``, made sparse, and the same for
ratios of two polynomials (``(m1*r1 + m2*r2)/(m1 + m2)``).

The maths here is pure: arrays in, :class:`PolynomialFit` and :class:`RationalFit` out.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from emp_kan.symbolic.choice import noise_floor

__all__ = [
    "POLYNOMIAL_TRANSFORMS",
    "Monomials",
    "PolynomialFit",
    "RationalFit",
    "common_factor",
    "designs",
    "factored_design",
    "laurent_monomials",
    "monomials",
    "polynomial_expression",
    "rational_expression",
    "sparse_polynomials",
    "sparse_rationals",
    "wide_design",
]

# Most columns of a term set backward elimination starts from (also at most a third of the
# fit rows).
MAX_FEATURES = 400

# Highest total degree of a monomial: 4 holds mu**2*B_x**2, the square of mu*|B|.
MAX_DEGREE = 4

# Most terms of a polynomial, besides its constant.
MAX_TERMS = 8

# A term goes when the validation RMSE without it stays within 5% of the best support's.
DROP_REL_TOL = 0.05

# name: (applies to labels y (n,), forward g(y), inverse as sympy of g's formula u and the
# sign s of y, inverse as numpy of g's values and the sign)
POLYNOMIAL_TRANSFORMS = {
    "identity": (
        lambda y: True,
        lambda y: y,
        lambda u, s: u,
        lambda t, s: t,
    ),
    "square": (
        lambda y: bool((y > 0).all() or (y < 0).all()),
        np.square,
        lambda u, s: s * sp.sqrt(u),
        lambda t, s: s * np.sqrt(t),
    ),
    "reciprocal": (
        lambda y: bool((y != 0).all()),
        np.reciprocal,
        lambda u, s: 1 / u,
        lambda t, s: 1.0 / t,
    ),
    "inverse-square": (
        lambda y: bool((y > 0).all() or (y < 0).all()),
        lambda y: 1.0 / np.square(y),
        lambda u, s: s / sp.sqrt(u),
        lambda t, s: s / np.sqrt(t),
    ),
}

_TRIG = {"sin": (np.sin, sp.sin), "cos": (np.cos, sp.cos)}


@dataclass(frozen=True)
class Monomials:
    """The columns of a design matrix: monomials of the inputs, some times ``sin`` or ``cos``
    of one input.

    Attributes
    ----------
    exponents : ndarray of int, shape (m, d)
        Column ``j`` is ``prod_i x_i ** exponents[j, i]`` ...
    trig : tuple of (str, int) or (str, int, int) or None, length m
        ... times ``trig[j][0](x_{trig[j][1]})``, or of ``x_{trig[j][1]} - x_{trig[j][2]}``
        (``cos(theta1 - theta2)``), where not None.
    """

    exponents: np.ndarray
    trig: tuple

    @property
    def laurent(self) -> bool:
        """Whether some exponent is negative."""
        return bool((self.exponents < 0).any())

    def __len__(self) -> int:
        return len(self.trig)

    def values(self, x: np.ndarray) -> np.ndarray:
        """The columns at ``x (n, d)``, shape (n, m)."""
        with np.errstate(all="ignore"):
            out = np.prod(x[:, None, :] ** self.exponents[None, :, :], axis=2)
            for j, trig in enumerate(self.trig):
                if trig is not None:
                    out[:, j] *= _TRIG[trig[0]][0](_trig_argument(trig, x.T))
        return out

    def sympy(self, j: int, symbols) -> sp.Expr:
        """Column ``j`` as a sympy expression of ``symbols``."""
        term = sp.Mul(
            *(
                s ** sp.Rational(round(2 * e), 2)
                for s, e in zip(symbols, self.exponents[j], strict=True)
            )
        )
        trig = self.trig[j]
        if trig is not None:
            term *= _TRIG[trig[0]][1](_trig_argument(trig, symbols))
        return term


def _trig_argument(trig: tuple, columns):
    """The argument of a column's function: one input, or the difference of two."""
    return columns[trig[1]] if len(trig) == 2 else columns[trig[1]] - columns[trig[2]]


def _exponent_rows(n_inputs: int, degree: int) -> list[tuple[int, ...]]:
    """Every exponent tuple of total degree 1..``degree``, lowest degree first."""
    rows = []
    for total in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(n_inputs), total):
            row = [0] * n_inputs
            for i in combo:
                row[i] += 1
            rows.append(tuple(row))
    return rows


def monomials(
    n_inputs: int,
    degree: int,
    trig_degree: int | None = None,
    pair_degree: int | None = None,
) -> Monomials:
    """The monomials of ``n_inputs`` inputs of total degree 1..``degree``; with
    ``trig_degree``, ``sin`` and ``cos`` of each input times the monomials of the other inputs
    of degree 0..``trig_degree``; with ``pair_degree``, ``sin`` and ``cos`` of the difference
    of two inputs times the monomials of the others of degree 0..``pair_degree``."""
    rows = _exponent_rows(n_inputs, degree)
    trigs: list = [None] * len(rows)
    arguments = []
    if trig_degree is not None:
        arguments += [((i,), trig_degree) for i in range(n_inputs)]
    if pair_degree is not None:
        arguments += [(pair, pair_degree) for pair in itertools.combinations(range(n_inputs), 2)]
    for inputs, most in arguments:
        for row in [(0,) * n_inputs, *_exponent_rows(n_inputs, most)]:
            if all(row[i] == 0 for i in inputs):
                for name in _TRIG:
                    rows.append(row)
                    trigs.append((name, *inputs))
    return Monomials(np.array(rows, dtype=float).reshape(-1, n_inputs), tuple(trigs))


def designs(
    n_inputs: int,
    n_rows: int,
    max_features: int = MAX_FEATURES,
    halves: tuple[bool, ...] | None = None,
    reciprocals: tuple[bool, ...] | None = None,
) -> list[Monomials]:
    """The term sets to search, smallest first: monomials of degree 1..:data:`MAX_DEGREE`,
    each alone and with ``sin``/``cos`` of one input times monomials of one degree less, as
    long as a set has at most ``max_features`` columns and a third as many as ``n_rows``.

    With ``halves`` (per input: whether it is never negative), also the same sets of degree
    up to 2 in the square roots of those inputs, so that their exponents may be halves
    (``I_1 + I_2 + 2*sqrt(I_1*I_2)*cos(delta)``).

    With ``reciprocals`` (per input: whether it keeps one sign, away from 0), also the
    monomials of degree 2 and 3 in those inputs and their reciprocals, so that exponents may
    be negative (``1/y = n/d2 + 1/d1``, ``1/y = 1/omega_0 - v/(c*omega_0)``)."""
    limit = min(max_features, n_rows // 3)
    out = []
    for degree in range(1, MAX_DEGREE + 1):
        for trig_degree in (None, degree - 1):
            columns = monomials(n_inputs, degree, trig_degree)
            if len(columns) <= limit:
                out.append(columns)
    if reciprocals is not None and any(reciprocals):
        for degree in (2, 3):
            columns = laurent_monomials(n_inputs, degree, reciprocals)
            if len(columns) <= limit:
                out.append(columns)
    if halves is None or not any(halves):
        return out
    for degree in (2, 4):  # in the roots: up to x**2 of a halvable input
        for trig_degree in (None, degree - 2):
            columns = _in_roots(monomials(n_inputs, degree, trig_degree), halves)
            if len(columns) <= limit:
                out.append(columns)
    return out


def laurent_monomials(n_inputs: int, degree: int, reciprocals: tuple[bool, ...]) -> Monomials:
    """The distinct monomials of total degree 1..``degree`` in the inputs and in the
    reciprocals of those ``reciprocals`` allows (``x_i`` and ``1/x_i`` never in one term)."""
    allowed = [i for i in range(n_inputs) if reciprocals[i]]
    rows: dict[tuple[int, ...], None] = {}
    for row in _exponent_rows(n_inputs + len(allowed), degree):
        exponents = list(row[:n_inputs])
        for k, i in enumerate(allowed):
            inverse = row[n_inputs + k]
            if inverse and exponents[i]:
                break
            exponents[i] -= inverse
        else:
            rows.setdefault(tuple(exponents), None)
    return Monomials(np.array(list(rows), dtype=float).reshape(-1, n_inputs), (None,) * len(rows))


def _in_roots(columns: Monomials, halves: tuple[bool, ...]) -> Monomials:
    """``columns`` read as monomials of ``sqrt(x_i)`` for the inputs ``halves`` allows: their
    exponents halved, keeping the columns where the other inputs' exponents stay whole."""
    halvable = np.array(halves, dtype=bool)
    exponents = columns.exponents
    keep = (exponents[:, ~halvable] % 2 == 0).all(axis=1)
    return Monomials(
        exponents[keep] / 2, tuple(t for t, k in zip(columns.trig, keep, strict=True) if k)
    )


# Most columns of the set forward selection searches.
MAX_WIDE_FEATURES = 600


def wide_design(n_inputs: int, max_features: int = MAX_WIDE_FEATURES) -> Monomials:
    """The widest term set forward selection searches: monomials up to the highest degree
    (at most :data:`MAX_DEGREE`) whose set, with ``sin``/``cos`` of each input times monomials
    of the others of the same degree (``q*E_f + q*B*v*sin(theta)``) and, where they fit, of
    the difference of two inputs times monomials of the others up to degree 2
    (``x1**2 + x2**2 - 2*x1*x2*cos(theta1 - theta2)``), has at most ``max_features`` columns;
    degree 1 without functions when none fits."""
    for degree in range(MAX_DEGREE, 0, -1):
        columns = monomials(n_inputs, degree, degree, min(degree, 2))
        if len(columns) <= max_features:
            return columns
        columns = monomials(n_inputs, degree, degree)
        if len(columns) <= max_features:
            return columns
    return monomials(n_inputs, 1)


# A power this close to a nonzero whole number marks an input as a factor of every term.
_WHOLE_POWER = 0.1

# Most columns of a factored term set: exponents -2..2 over up to five inputs.
MAX_FACTORED_FEATURES = 4000

# Most terms forward selection takes from a factored term set.
FACTORED_TERMS = 4


def common_factor(x: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, list[int]] | None:
    """The monomial every term of ``target (n,)`` seems to share, from a power law of
    ``|target|`` over the inputs ``x (n, d)`` of one sign: the inputs whose power is within
    :data:`_WHOLE_POWER` of a nonzero whole number, with that power, ``(d,)``; and the other
    inputs. None when no input has such a power, or none is left over.

    An input that multiplies every term gets its whole power in the power law whatever the
    rest does (``n_0`` in ``n_0 + n_0*E_f*p_d*cos(theta)/(T*k_b)``)."""
    keep = np.isfinite(target) & (target != 0)
    one_sign = [i for i in range(x.shape[1]) if (x[:, i] > 0).all() or (x[:, i] < 0).all()]
    if keep.sum() <= len(one_sign) + 1 or not one_sign:
        return None
    logs = np.column_stack([np.log(np.abs(x[keep][:, one_sign])), np.ones(int(keep.sum()))])
    # rows near a zero of the target weigh little: there its log swings by decades
    magnitude = np.abs(target[keep])
    weight = np.sqrt(magnitude / (magnitude + float(np.median(magnitude))))
    powers, *_ = np.linalg.lstsq(logs * weight[:, None], np.log(magnitude) * weight, rcond=None)
    factor = np.zeros(x.shape[1])
    for i, power in zip(one_sign, powers[:-1], strict=True):
        if round(power) != 0 and abs(power - round(power)) <= _WHOLE_POWER:
            factor[i] = round(power)
    free = [i for i in range(x.shape[1]) if factor[i] == 0]
    return (factor, free) if factor.any() and free else None


def factored_design(
    factor: np.ndarray, free: list[int], max_features: int = MAX_FACTORED_FEATURES
) -> Monomials | None:
    """The monomial ``factor (d,)`` (exponents) times each monomial of the ``free`` inputs
    with exponents -2..2 (-1..1 where those are too many), and times ``sin``/``cos`` of one
    free input and a monomial of the others with exponents -1..1; None when even the
    smaller set has more than ``max_features`` columns.

    A sum whose terms share a factor has terms of high degree (``mu*B/(T*k_b)`` and
    ``mu*M*alpha/(T*c**2*epsilon*k_b)`` are of degree 4 and 6): beyond the plain term sets,
    but within a small box around the factor."""
    k = len(free)
    powers = next(
        (
            p
            for p in ((-2, -1, 0, 1, 2), (-1, 0, 1))
            if len(p) ** k + 2 * k * 3 ** (k - 1) <= max_features
        ),
        None,
    )
    if powers is None:
        return None
    rows, trig = [], []
    for free_powers in itertools.product(powers, repeat=k):
        row = factor.copy()
        row[free] = free_powers
        rows.append(row)
        trig.append(None)
    for j in free:
        others = [i for i in free if i != j]
        for other_powers in itertools.product((-1, 0, 1), repeat=len(others)):
            row = factor.copy()
            row[others] = other_powers
            for name in _TRIG:
                rows.append(row)
                trig.append((name, j))
    return Monomials(np.array(rows, dtype=float), tuple(trig))


@dataclass(frozen=True)
class PolynomialFit:
    """``g(y) = intercept + sum_k coefficients[k] * columns[support[k]]`` with ``g`` the
    transform, and the validation RMSE of the ``y`` it gives."""

    transform: str
    columns: Monomials
    support: tuple[int, ...]
    coefficients: np.ndarray  # (k,)
    intercept: float
    val_rmse: float

    @property
    def n_terms(self) -> int:
        return len(self.support)


def _least_squares(columns: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """The intercept and coefficients of ``target (n,)`` on ``columns (n, k)``."""
    design = np.column_stack([np.ones(len(target)), columns])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(solution[0]), solution[1:]


def _forward_path(
    features: np.ndarray, target: np.ndarray, max_terms: int, intercept: bool = True
) -> list[tuple]:
    """Forward selection by orthogonal least squares: the supports of 1..``max_terms``
    columns of ``features (n, m)``, each the last plus the column whose part orthogonal to
    the chosen ones (and the constant, with ``intercept``) explains most of the residual."""
    n, m = features.shape
    basis = np.ones((n, 1)) / math.sqrt(n) if intercept else np.zeros((n, 0))
    remaining = features - basis @ (basis.T @ features)
    residual = target - basis @ (basis.T @ target)
    scale = np.linalg.norm(features, axis=0)
    support: list[int] = []
    path = []
    for _ in range(max_terms):
        norms = np.linalg.norm(remaining, axis=0)
        # a column (nearly) in the span of the chosen ones adds nothing but ill-conditioning
        usable = norms > 1e-8 * np.maximum(scale, 1e-300)
        usable[support] = False
        if not usable.any():
            break
        scores = np.where(usable, np.abs(remaining.T @ residual) / np.where(usable, norms, 1), -1)
        best = int(np.argmax(scores))
        if scores[best] <= 0:
            break
        q = remaining[:, best] / norms[best]
        remaining = remaining - np.outer(q, q @ remaining)
        residual = residual - q * (q @ residual)
        support.append(best)
        path.append(tuple(support))
    return path


def _backward_path(
    features: np.ndarray, target: np.ndarray, max_terms: int, intercept: bool = True
) -> list[tuple]:
    """Backward elimination from every column of ``features (n, m)`` (and the constant, with
    ``intercept``): the supports of ``max_terms``..1 columns, each the last without its
    column of smallest t-statistic (above ``4 * max_terms`` columns, the smallest tenth goes
    at once). Monomials of inputs of one sign are strongly correlated, so a forward search
    takes wrong terms first; the full least-squares fit puts the weight where it belongs."""
    n = len(target)
    centred = features - features.mean(axis=0) if intercept else features
    norms = np.linalg.norm(centred, axis=0)
    support = [j for j in range(features.shape[1]) if norms[j] > 0]
    unit = centred / np.where(norms > 0, norms, 1.0)
    goal = target - target.mean() if intercept else target
    path = []
    while support:
        design = unit[:, support]
        try:
            solution, *_ = np.linalg.lstsq(design, goal, rcond=None)
            spread = np.sqrt(np.clip(np.diag(np.linalg.pinv(design.T @ design)), 0, None))
        except np.linalg.LinAlgError:
            break
        residual = goal - design @ solution
        noise = max(float(np.sqrt(residual @ residual / n)), 1e-300)
        with np.errstate(over="ignore"):  # a column with no error bar: t is inf, it stays
            t = np.abs(solution) / np.maximum(spread * noise, 1e-300)
        if len(support) <= max_terms:
            path.append(tuple(support))
        drop = max(1, len(support) // 10) if len(support) > 4 * max_terms else 1
        for k in sorted(np.argsort(t)[:drop], reverse=True):
            del support[int(k)]
    return path


# Most supports of one size that _SmallSupports solves.
MAX_COMBINATIONS = 50_000


class _SmallSupports:
    """Every support of 1..``most_terms`` columns of ``features (n, m)`` (sizes with more than
    :data:`MAX_COMBINATIONS` supports are skipped), with the inverse Gram block of each, so
    that each target's best supports take one product per support."""

    def __init__(self, features: np.ndarray, most_terms: int = 3) -> None:
        centred = features - features.mean(axis=0)
        norms = np.linalg.norm(centred, axis=0)
        self.usable = np.flatnonzero(norms > 0)
        self.unit = centred[:, self.usable] / norms[self.usable]
        gram = self.unit.T @ self.unit
        self.sizes = []
        for size in range(1, most_terms + 1):
            if math.comb(len(self.usable), size) > MAX_COMBINATIONS:
                break
            combos = np.array(
                list(itertools.combinations(range(len(self.usable)), size)), dtype=int
            ).reshape(-1, size)
            blocks = gram[combos[:, :, None], combos[:, None, :]]  # (k, size, size)
            # unit columns: a determinant near 0 is a nearly collinear support, which fits
            # anything with huge opposite coefficients; it is left out
            kept = np.linalg.det(blocks) > 1e-8
            self.sizes.append((combos[kept], np.linalg.inv(blocks[kept])))

    def best(self, target: np.ndarray, keep: int = 3) -> list[tuple]:
        """For each size, the ``keep`` supports that explain most of ``target (n,)``."""
        projection = self.unit.T @ (target - target.mean())
        out = []
        for combos, inverses in self.sizes:
            if not len(combos):
                continue
            rights = projection[combos]
            explained = np.einsum("ki,kij,kj->k", rights, inverses, rights)
            for k in np.argsort(-explained)[:keep]:
                out.append(tuple(int(self.usable[j]) for j in combos[k]))
        return out


# An input may enter as 1/x where it keeps one sign and its smallest magnitude is at least this
# share of its largest: 1/x stays a tame column.
_RECIPROCAL_SPAN = 1e-2


def _away_from_zero(x: np.ndarray) -> tuple[bool, ...]:
    """Per column of ``x (n, d)``: whether it keeps one sign, away from 0."""
    out = []
    for column in x.T:
        magnitude = np.abs(column)
        one_sign = bool((column > 0).all() or (column < 0).all())
        out.append(one_sign and float(magnitude.min()) >= _RECIPROCAL_SPAN * float(magnitude.max()))
    return tuple(out)


def sparse_polynomials(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    max_terms: int = MAX_TERMS,
) -> list[PolynomialFit]:
    """For each transform ``g`` of :data:`POLYNOMIAL_TRANSFORMS` that applies to the labels,
    the sparse polynomial of ``g(y)``.

    The supports searched are backward elimination's from every term set of :func:`designs`,
    forward selection's over :func:`wide_design`'s and, where ``g(y)``'s terms share a
    :func:`common_factor`, over its :func:`factored_design`; each is fitted on the fit rows and
    measured as ``y`` on the validation rows. The fewest terms whose validation RMSE is within
    :data:`DROP_REL_TOL` of the best, or below the floor of float32 rounding
    (:func:`~emp_kan.symbolic.choice.noise_floor`), wins.

    Parameters
    ----------
    x_fit : ndarray, shape (n, d)
    y_fit : ndarray, shape (n,)
    x_val : ndarray, shape (v, d)
    y_val : ndarray, shape (v,)
    max_terms : int
        Most terms besides the constant.

    Returns
    -------
    list of PolynomialFit
        Most accurate on the validation rows first (below the floor of float rounding, the
        fewest terms first); transforms without a finite fit are left out.
    """
    halves = tuple(bool((x_fit[:, i] >= 0).all()) for i in range(x_fit.shape[1]))
    term_sets = designs(
        x_fit.shape[1], len(y_fit), halves=halves, reciprocals=_away_from_zero(x_fit)
    )
    if not term_sets:
        return []
    # (columns, searched backward, most terms searched forward). A Laurent set's columns
    # (v/omega, 1/(c*omega), ...) are so correlated on positive inputs that backward
    # elimination and forward selection both miss the two true terms of 1/y = 1/omega_0 -
    # v/(c*omega_0) at 0.1% noise: its supports of up to three terms are all tried instead
    # (_SmallSupports).
    searches = [(columns, not columns.laurent, 0) for columns in term_sets]
    searches.append((wide_design(x_fit.shape[1]), False, max_terms))
    values = []
    for columns, backward, forward_terms in searches:
        fit_values, val_values = columns.values(x_fit), columns.values(x_val)
        finite = np.isfinite(fit_values).all(axis=0) & np.isfinite(val_values).all(axis=0)
        fit_values = np.where(finite, fit_values, 0.0)
        small = _SmallSupports(fit_values[:, finite]) if columns.laurent else None
        values.append((columns, fit_values, val_values, finite, backward, forward_terms, small))
    sign = 1.0 if (y_fit > 0).all() else -1.0
    fits = []
    for name, (applies, forward, _, inverse) in POLYNOMIAL_TRANSFORMS.items():
        if not (applies(y_fit) and applies(y_val)):
            continue
        with np.errstate(all="ignore"):
            target = forward(y_fit)
        if not np.isfinite(target).all():
            continue
        scored = []
        factored = _factored_search(x_fit, x_val, target)
        for columns, fit_values, val_values, finite, backward, forward_terms, small in [
            *values,
            *factored,
        ]:
            paths = []
            if backward:
                paths += _backward_path(fit_values[:, finite], target, max_terms)
            if forward_terms:
                paths += _forward_path(fit_values[:, finite], target, forward_terms)
            if small is not None:
                paths += small.best(target)
            usable = np.flatnonzero(finite)
            for path_support in dict.fromkeys(paths):
                support = tuple(int(usable[j]) for j in path_support)
                intercept, coefficients = _least_squares(fit_values[:, support], target)
                with np.errstate(all="ignore"):
                    y = inverse(intercept + val_values[:, support] @ coefficients, sign)
                    rmse = float(np.sqrt(np.mean((y - y_val) ** 2)))
                if math.isfinite(rmse):
                    scored.append(
                        PolynomialFit(name, columns, support, coefficients, intercept, rmse)
                    )
        if not scored:
            continue
        fits.append(_fewest_terms(scored, noise_floor(float(np.std(y_val)))))
    # below the floor of float rounding errors are equal: the fewest terms first
    floor = noise_floor(float(np.std(y_val)))
    return sorted(fits, key=lambda f: (max(f.val_rmse, floor), f.n_terms))


def _factored_search(x_fit: np.ndarray, x_val: np.ndarray, target: np.ndarray) -> list[tuple]:
    """The factored term set of ``target``'s :func:`common_factor` as a search of
    :func:`sparse_polynomials` (forward selection of up to :data:`FACTORED_TERMS` terms),
    or nothing where it has no common factor."""
    shared = common_factor(x_fit, target)
    columns = None if shared is None else factored_design(*shared)
    if columns is None:
        return []
    fit_values, val_values = columns.values(x_fit), columns.values(x_val)
    finite = np.isfinite(fit_values).all(axis=0) & np.isfinite(val_values).all(axis=0)
    fit_values = np.where(finite, fit_values, 0.0)
    return [(columns, fit_values, val_values, finite, False, FACTORED_TERMS, None)]


def _fewest_terms(scored: list, floor: float):
    """Of fits with ``val_rmse`` and ``n_terms``, the one with the fewest terms whose
    validation RMSE is within :data:`DROP_REL_TOL` of the best or below ``floor``."""
    best = min(f.val_rmse for f in scored)
    allowed = max(best * (1 + DROP_REL_TOL), floor)
    return min((f for f in scored if f.val_rmse <= allowed), key=lambda f: (f.n_terms, f.val_rmse))


def polynomial_expression(fit: PolynomialFit, symbols, sign: int) -> sp.Expr:
    """``fit`` as a sympy expression of ``y`` in ``symbols`` (labels of sign ``sign``)."""
    inner = sp.Float(fit.intercept) + sp.Add(
        *(
            sp.Float(float(c)) * fit.columns.sympy(j, symbols)
            for j, c in zip(fit.support, fit.coefficients, strict=True)
        )
    )
    return POLYNOMIAL_TRANSFORMS[fit.transform][2](inner, sign)


# The denominator's terms: the constant and monomials up to this degree.
DENOMINATOR_DEGREE = 2


@dataclass(frozen=True)
class RationalFit:
    """``g(y) = (intercept + sum numerator terms) / (denominator term ``normaliser`` + sum of
    other denominator terms)`` with ``g`` the transform, and the validation RMSE of ``y``.

    ``numerator`` and ``denominator`` are (columns, support, coefficients); the denominator's
    columns start with the constant."""

    transform: str
    numerator: tuple
    denominator: tuple
    normaliser: int
    intercept: float
    val_rmse: float

    @property
    def n_terms(self) -> int:
        return len(self.numerator[1]) + len(self.denominator[1])


def _with_constant(columns: Monomials) -> Monomials:
    zero = np.zeros((1, columns.exponents.shape[1]))
    return Monomials(np.vstack([zero, columns.exponents]), (None, *columns.trig))


def sparse_rationals(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    max_terms: int = MAX_TERMS,
) -> list[RationalFit]:
    """For ``g(y)`` with ``g`` the identity or the square (where the labels allow), the
    sparse ratio of polynomials ``P(x) / Q(x)``: ``g(y) * Q(x) = P(x)`` is linear in both
    polynomials' coefficients once one term of ``Q`` (the constant or one input) is fixed to
    1, so backward elimination finds both supports at once (``(m1*r1 + m2*r2)/(m1 + m2)``).

    ``Q`` has the constant and the monomials of degree 1, then up to
    :data:`DENOMINATOR_DEGREE` unless degree 1 reached the floor: a ``Q`` of higher degree
    than the law's lets ``P*h / (Q*h)`` solve it for any ``h``, and the least-squares fit
    spreads over those. ``P`` is the largest term set of :func:`designs` without functions
    that leaves room for ``Q``. Parameters and returns as :func:`sparse_polynomials`.
    """
    floor = noise_floor(float(np.std(y_val)))
    fits: dict[str, list[RationalFit]] = {}
    for degree in range(1, DENOMINATOR_DEGREE + 1):
        for name, scored in _rationals_of_degree(
            x_fit, y_fit, x_val, y_val, degree, max_terms
        ).items():
            fits.setdefault(name, []).extend(scored)
        if any(f.val_rmse <= floor for scored in fits.values() for f in scored):
            break
    out = []
    for scored in fits.values():
        out.append(_fewest_terms(scored, floor))
    return sorted(out, key=lambda f: f.val_rmse)


def _rationals_of_degree(
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    degree: int,
    max_terms: int,
) -> dict[str, list[RationalFit]]:
    """Every ratio :func:`sparse_rationals` tries with ``Q`` of degree ``degree``, by
    transform."""
    n_inputs = x_fit.shape[1]
    denominator = _with_constant(monomials(n_inputs, degree))
    room = min(MAX_FEATURES, len(y_fit) // 3) - len(denominator)
    plain = [c for c in designs(n_inputs, len(y_fit)) if all(t is None for t in c.trig)]
    plain = [c for c in plain if len(c) <= room]
    if not plain:
        return {}
    numerator = plain[-1]
    p_fit, p_val = numerator.values(x_fit), numerator.values(x_val)
    q_fit, q_val = denominator.values(x_fit), denominator.values(x_val)
    if not all(np.isfinite(a).all() for a in (p_fit, p_val, q_fit, q_val)):
        return {}
    normalisers = range(1 + n_inputs)  # the constant, then each input
    fits = {}
    for name in ("identity", "square"):
        applies, forward, _, inverse = POLYNOMIAL_TRANSFORMS[name]
        if not (applies(y_fit) and applies(y_val)):
            continue
        sign = 1.0 if (y_fit > 0).all() else -1.0
        t = forward(y_fit)
        scored = []
        for j0 in normalisers:
            others = [k for k in range(len(denominator)) if k != j0]
            features = np.column_stack([p_fit, -t[:, None] * q_fit[:, others]])
            target = t * q_fit[:, j0]
            width = p_fit.shape[1]
            for support in _backward_path(features, target, max_terms):
                p_support = tuple(k for k in support if k < width)
                q_support = tuple(others[k - width] for k in support if k >= width)
                if not q_support and j0 == 0:
                    continue  # a polynomial: sparse_polynomials' business
                intercept, coefficients = _least_squares(features[:, list(support)], target)
                a = coefficients[: len(p_support)]
                b = coefficients[len(p_support) :]
                # a fixed term that is not in the law leaves the others' coefficients
                # unbounded, and a denominator of which it is a sliver
                fixed = float(np.mean(np.abs(q_fit[:, j0])))
                if fixed < 1e-3 * float(np.mean(np.abs(q_fit[:, list(q_support)] @ b))):
                    continue
                with np.errstate(all="ignore"):
                    top = intercept + p_val[:, list(p_support)] @ a
                    bottom = q_val[:, j0] + q_val[:, list(q_support)] @ b
                    y = inverse(top / bottom, sign)
                    rmse = float(np.sqrt(np.mean((y - y_val) ** 2)))
                if math.isfinite(rmse):
                    scored.append(
                        RationalFit(
                            name,
                            (numerator, p_support, a),
                            (denominator, q_support, b),
                            j0,
                            intercept,
                            rmse,
                        )
                    )
        if scored:
            fits[name] = scored
    return fits


def rational_expression(fit: RationalFit, symbols, sign: int) -> sp.Expr:
    """``fit`` as a sympy expression of ``y`` in ``symbols`` (labels of sign ``sign``)."""
    columns, support, coefficients = fit.numerator
    top = sp.Float(fit.intercept) + sp.Add(
        *(
            sp.Float(float(c)) * columns.sympy(j, symbols)
            for j, c in zip(support, coefficients, strict=True)
        )
    )
    columns, support, coefficients = fit.denominator
    bottom = columns.sympy(fit.normaliser, symbols) + sp.Add(
        *(
            sp.Float(float(c)) * columns.sympy(j, symbols)
            for j, c in zip(support, coefficients, strict=True)
        )
    )
    return POLYNOMIAL_TRANSFORMS[fit.transform][2](top / bottom, sign)
