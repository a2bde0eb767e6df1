"""A power law times one function of one input: ``y = C * prod_i x_i**a_i * f(a*x_j + b)**c``.

About one law in six in the Feynman list has this shape (``F*r*sin(theta)``,
``p_d*cos(theta)/(4*pi*epsilon*r**2)``, ``sigma/(epsilon*(chi + 1))``,
``n_0*exp(-x)``...). A sum-KAN models it as a square of sums, and the log route cannot take it
when ``f`` changes sign on the data (``sin(theta)`` for ``theta`` in [1, 5]), because then no
product of the inputs' signs explains the sign of ``y``.

In log space the law is linear in everything but ``(a, b)``::

    log|y| = sum_i a_i log|x_i| + c log|f(a*x_j + b)| + log|C|

so for each input ``j`` the pruned KAN kept and each library function ``f``, a grid over
``(a, b)`` is scored in closed form (the fixed columns are projected out once; the one column
that moves with ``(a, b)`` is a rank-one update), the best grid points are polished by
Nelder-Mead, and the sign of ``y`` is modelled as for the log route: the sign of ``f**c``
times a product of the other inputs' signs. The fits use the fit rows only; the candidates are
mapped to formulas of ``y`` whose constants snap on the validation rows, and they compete with
every other candidate in :func:`emp_kan.symbolic.choice.choose_formula`.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sympy as sp
import torch

from emp_kan._runtime.memo import digest, recall
from emp_kan.symbolic.products.kernels import (
    FUNCTION_CODES,
    LOG_FLOOR,
    grid_sse,
    log_column_jacobian,
    log_column_residual,
)
from emp_kan.symbolic.registry import library_function
from emp_kan.symbolic.transform import LogTransform, _sign_model, formula_of_expression

__all__ = ["ProductFit", "fit_products", "product_formulas"]

_A_GRID = np.arange(0.25, 6.01, 0.25)  # a step of 1/4: sin(2.5*v) over a few periods
_B_GRID = np.linspace(-math.pi, math.pi, 25)
_B_GRID = (_B_GRID - _B_GRID[::-1]) / 2  # exactly odd: (a, b) and (-a, -b) pair up bitwise
_CLIP = math.log(0.05)  # the smooth search floors logs at 5% of their median
_INTEGER_POWER = 0.1  # c within this of a whole number is taken as that number
_MIN_ROWS = 8
_MAX_POWER = 8.0  # |c| beyond this marks a degenerate fit
_SIGN_AGREEMENT = 0.95  # share of fit rows whose sign the sign model must explain
_MIN_ARGUMENT_SWING = 0.05  # f's argument must move at least this much over the rows
_ASYMPTOTIC = {"cosh": 6.0, "tanh": 6.0, "exp(x)-1": 10.0}  # |u| beyond: f is its asymptote
_STARTS = 2  # per landscape
_SNAP_DISTANCE = 0.05  # an exponent this close to a half or a third is tried there
_POLISH_EVALUATIONS = 100
_EXHAUSTIVE_INPUTS = 6  # up to here every monomial argument is scored, beyond it greedily
_SQUARES_INPUTS = 4  # up to here the argument's powers may be +-2 as well (theta**2/sigma**2)
_COARSE_A = np.array([0.5, 1.0, 2.0])
_COARSE_B = np.linspace(-math.pi, math.pi, 9)
_GROWTH_GAIN = 0.8  # an input joins the argument when it cuts the log-space RMSE by 20%


@dataclass(frozen=True)
class ProductFit:
    """One fitted ``C * prod_i |x_i|**a_i * f(a*z + b)**c`` (signs modelled apart), where the
    argument ``z = prod_k x_k**p_k`` is one input or a monomial of a few.

    Attributes
    ----------
    argument : tuple of (int, int)
        ``(k, p_k)`` pairs of ``z``; ``((j, 1),)`` for one input.
    function : str
        ``f``'s library name (``"x"``: a power of the affine ``z + b``).
    a, b, c : float
    exponents : dict of int to float
        ``a_i`` of every input in the power law.
    log_scale : float
        ``log|C|``.
    log_rmse : float
        RMSE of ``log|y|`` on the fit rows, each row weighted by ``|y| / (|y| + median|y|)``.
    """

    argument: tuple[tuple[int, int], ...]
    function: str
    a: float
    b: float
    c: float
    exponents: dict[int, float]
    log_scale: float
    log_rmse: float

    def argument_values(self, x: np.ndarray) -> np.ndarray:
        """``z (n,)`` on the rows ``x (n, d)``."""
        return _monomial(x, self.argument)


def _monomial(x: np.ndarray, argument: tuple[tuple[int, int], ...]) -> np.ndarray:
    z = np.ones(len(x))
    for k, p in argument:
        z = z * x[:, k] ** float(p)
    return z


# Two functions of exp for products only, searched where the library has exp: the
# Bose-Einstein and Planck denominator exp(u) - 1 and the cosh of two-state systems.
_EXP_FAMILY = {
    "exp(x)-1": (np.expm1, lambda u: sp.exp(u) - 1),
    "cosh": (np.cosh, sp.cosh),
}


# Functions with |f(-u)| = |f(u)| bitwise in numpy, so log|f(a z + b)| = log|f(-a z - b)|.
_MIRRORED = frozenset(
    {"sin", "cos", "tan", "tanh", "arcsin", "arctan", "arctanh", "gaussian", "cosh"}
)


def _functions(library: tuple[str, ...]) -> list[str]:
    """The functions worth a search: ``x`` (whose power ``c`` covers every power and root of
    an affine), the library's non-power functions (``abs``, ``sgn`` and the constant add
    nothing to a power law) and, with ``exp``, :data:`_EXP_FAMILY`."""
    out = ["x"]
    for name in library:
        entry = library_function(name)
        if entry.homogeneous is None and name not in ("0", "x", "sgn"):
            out.append(name)
    if "exp" in library:
        out += list(_EXP_FAMILY)
    return out


def _numpy_form(function: str):
    return (
        _EXP_FAMILY[function][0] if function in _EXP_FAMILY else (library_function(function).numpy)
    )


def _sympy_form(function: str):
    return (
        _EXP_FAMILY[function][1] if function in _EXP_FAMILY else (library_function(function).sympy)
    )


def _log_abs(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.log(np.abs(values))
    return np.where(np.isfinite(out), np.maximum(out, LOG_FLOOR), np.nan)


class _Projected:
    """``log|y|`` and the fixed columns (logs of the inputs, a constant) with the fixed columns
    projected out, so that one more column's fit is closed form.

    With ``clip``, every column is floored at its median plus ``clip`` (a log): the search's
    smooth companion. Near the zeros of ``f`` a small shift of ``(a, b)`` moves ``log|f|`` by
    decades, which makes the exact landscape rugged; floored, the landscape keeps one broad
    basin around the law, and the exact one finishes there. The target is not floored: at
    the law, the rows where ``f`` is floored are rows where ``y`` is small, which weigh little.
    """

    def __init__(
        self, fixed: np.ndarray, target: np.ndarray, weight: np.ndarray, clip: float | None = None
    ):
        self.clip = clip
        self.smooth = self if clip is not None else _Projected(fixed, target, weight, _CLIP)
        self.root_weight = np.sqrt(weight)
        self.fixed = fixed
        self.log_y = target
        q, _ = np.linalg.qr(fixed * self.root_weight[:, None])
        self.q = q
        target = target * self.root_weight
        self.target = target - q @ (q.T @ target)
        self.target_ss = float(self.target @ self.target)
        self.total_weight = float(np.sum(weight))

    def _projected_columns(self, columns: np.ndarray) -> np.ndarray:
        """``columns (n, m)`` floored (with ``clip``), weighted, and with the fixed columns
        projected out."""
        if self.clip is not None:  # the median of every 4th row: as good, 4x cheaper
            columns = np.maximum(columns, np.median(columns[::4], axis=0) + self.clip)
        columns = columns * self.root_weight[:, None]
        return columns - self.q @ (self.q.T @ columns)

    def residual(self, column: np.ndarray) -> np.ndarray:
        """The weighted residual vector ``(n,)`` with the one column ``column (n,)`` added."""
        moved = self._projected_columns(column[:, None])[:, 0]
        norm = float(moved @ moved)
        if norm <= 1e-12 * len(self.target):
            return self.target
        return self.target - moved * (float(moved @ self.target) / norm)

    def sse(self, columns: np.ndarray) -> np.ndarray:
        """Weighted residual sum of squares with each column of ``columns (n, m)`` added:
        ``(m,)``."""
        residual = self._projected_columns(columns)
        norm = np.einsum("ij,ij->j", residual, residual)
        dot = residual.T @ self.target
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.where(norm > 1e-12 * len(self.target), dot * dot / norm, 0.0)
        return self.target_ss - gain


def _columns(function: str, z: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log|f(a*z + b)|`` for every pair ``(a[k], b[k])``: ``(n, m)``, NaN where ``f`` is
    undefined."""
    with np.errstate(all="ignore"):
        values = _numpy_form(function)(np.outer(z, a) + b)
    return _log_abs(values)


def _grid_sse(
    function: str, z: np.ndarray, a: np.ndarray, b: np.ndarray, projected: _Projected, exact: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The weighted SSE of ``f(a[k]*z + b[k])`` for every grid point on the smooth landscape
    and (with ``exact``) on the exact one: ``(m,)`` each, inf where ``f`` is undefined."""
    every = None
    if function in _MIRRORED:  # f(-u) = +-f(u): (a, b) and (-a, -b) give one column
        sign = np.sign(a)
        _, first, every = np.unique(
            np.column_stack([a * sign, b * sign]), axis=0, return_index=True, return_inverse=True
        )
        a, b = a[first], b[first]
    with np.errstate(all="ignore"):
        logs = np.log(np.abs(_numpy_form(function)(np.outer(a, z) + b[:, None])))
    smooth_sse = np.empty(len(a))
    exact_sse = np.empty(len(a) if exact else 0)
    grid_sse(
        logs,
        projected.smooth.clip,
        projected.root_weight,
        projected.q,
        projected.target,
        exact_sse,
        smooth_sse,
    )
    if every is not None:
        smooth_sse = smooth_sse[every]
        exact_sse = exact_sse[every] if exact else exact_sse
    return smooth_sse, (exact_sse if exact else None)


def _grid(function: str, z: np.ndarray, even: int = 61) -> tuple[np.ndarray, np.ndarray]:
    """Starting points ``(a, b)`` for ``f(a*z + b)``, scaled to the spread of ``z`` (for
    ``x``: ``even`` shifts evenly over the range of ``z``, and a few more)."""
    span = float(np.max(np.abs(z))) or 1.0
    if function == "x":  # |a z + b| = |a| |z + b/a|: the scale is the constant's
        # Evenly over the range of z, and at the shifts a law of z spread over decades
        # needs: 1 - v**2/c**2, and z's own typical size.
        typical = float(np.median(np.abs(z))) or 1.0
        near = np.outer([1.0, typical], [0.25, 0.5, 1.0, 2.0, 4.0]).ravel()
        b = np.concatenate([np.linspace(-3 * span, 3 * span, even), [0.0], near, -near])
        return np.ones_like(b), b
    a = _scales(_A_GRID, z)
    aa, bb = np.meshgrid(a, _B_GRID, indexing="ij")
    return aa.ravel(), bb.ravel()


def _scales(grid: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``a`` values for ``f(a*z + b)``: ``grid`` as it is (Feynman-style inputs are of order 1,
    and ``sin(theta/2)`` wants exactly 0.5) and divided by the typical ``|z|`` (a monomial
    argument can be of any size), both signs."""
    scale = float(np.median(np.abs(z))) or 1.0
    a = grid if 0.5 < scale < 2.0 else np.concatenate([grid, grid / scale])
    return np.concatenate([a, -a])


def _best_fit(
    function: str,
    argument: tuple[tuple[int, int], ...],
    x: np.ndarray,
    projected: _Projected,
    power_inputs: list[int],
) -> ProductFit | None:
    """The grid's best ``(a, b)`` for ``f`` of ``argument``, polished; None if ``f`` is
    undefined on the rows for every grid point."""
    z = _monomial(x, argument)
    if not np.isfinite(z).all() or len(np.unique(z)) < 5:
        return None
    a, b = _grid(function, z)
    smooth_sse, exact_sse = _grid_sse(function, z, a, b, projected, exact=True)
    if not np.isfinite(smooth_sse).any():
        return None
    # Starts on both landscapes, each the best point of one of the best few values of a (one
    # basin each): the smooth one finds the law's basin where f has zeros in the data's
    # range, the exact one where the law's own zeros make the floored landscape misjudge it
    # (log(V/W)). Over a short stretch of a smooth f, other (a, b) with another power c fit
    # almost as well as the law and can hold the grid's very best point.
    ends = []
    for landscape, sse in ((projected.smooth, smooth_sse), (projected, exact_sse)):
        for k in _distinct_starts(sse, a):
            start = (a[k], b[k])
            if landscape is projected.smooth:
                start = _polish(function, z, landscape, *start)
                if start is None:
                    continue
                start = start[:2]
            end = _polish(function, z, projected, *start)
            if end is not None:
                ends.append(end)
    if not ends:
        return None
    a_z, b_z, _ = min(ends, key=lambda p: p[2])
    column = _columns(function, z, np.array([a_z]), np.array([b_z]))
    design = np.column_stack([projected.fixed, column])
    root = projected.root_weight
    log_y = projected.log_y
    coefficients, *_ = np.linalg.lstsq(design * root[:, None], log_y * root, rcond=None)
    residual = (design @ coefficients - log_y) * root
    return ProductFit(
        argument=argument,
        function=function,
        a=a_z,
        b=b_z,
        c=float(coefficients[-1]),
        exponents={i: float(e) for i, e in zip(power_inputs, coefficients, strict=False)},
        log_scale=float(coefficients[len(power_inputs)]),
        log_rmse=float(np.sqrt(np.sum(residual**2) / projected.total_weight)),
    )


def fit_products(
    x: np.ndarray, y: np.ndarray, inputs: list[int], library: tuple[str, ...], top: int = 3
) -> list[ProductFit]:
    """The ``top`` best power-law-times-one-function fits of ``y (n,)`` over ``x (n, d)``.

    Every input is tried as the function's argument with every function; then each
    function's best argument grows greedily into a monomial (``exp(-g*m*x/(T*k_b))``): one
    more input to the power +1 or -1 at a time, while that cuts the log-space RMSE by 20%.

    Parameters
    ----------
    x : ndarray (n, d)
        Fit rows (not the validation rows).
    y : ndarray (n,)
    inputs : list of int
        Columns that may appear.
    library : tuple of str
        Library names; see :func:`_functions` for which are searched.
    top : int

    Returns
    -------
    list of ProductFit
        Best first by log-space RMSE; empty when ``y`` is 0 on the rows or too few remain.
    """
    keep = np.isfinite(y) & (np.abs(y) > 1e-12 * max(float(np.max(np.abs(y))), 1e-300))
    x, y = x[keep], y[keep]
    if len(y) < _MIN_ROWS:
        return []
    log_y = np.log(np.abs(y))
    power_inputs = [i for i in inputs if not (x[:, i] == 0).any()]

    # Rows near a zero of y weigh little: there log|y| moves by decades for a small shift of
    # (a, b), which makes the search's landscape rugged around the right answer.
    magnitude = np.abs(y)
    weight = magnitude / (magnitude + float(np.median(magnitude)))

    def projection(columns: list[int]) -> _Projected:
        fixed = np.column_stack([np.log(np.abs(x[:, columns])), np.ones(len(y))])
        return _Projected(fixed, log_y, weight)

    projected = projection(power_inputs)
    fits: list[ProductFit] = []
    for j in inputs:
        # f of one input: that input has no power of its own (x**e * sin(a*x + b) imitates
        # sin(a'*x + b')**c too well over a short stretch); a monomial argument's inputs may.
        others = [i for i in power_inputs if i != j]
        alone = projection(others)
        for function in _functions(library):
            fit = _best_fit(function, ((j, 1),), x, alone, others)
            if fit is not None and math.isfinite(fit.log_rmse):
                fits.append(fit)
    fits.sort(key=lambda f: f.log_rmse)
    seeds = {}
    for fit in fits:  # each function's best argument: the seed its monomial grows from
        seeds.setdefault(fit.function, fit)
    grown = [_grow(fit, x, projected, inputs, power_inputs) for fit in seeds.values()]
    if len(inputs) <= _EXHAUSTIVE_INPUTS:
        grown += _exhaustive(x, projected, inputs, power_inputs, library)
    # A huge power of a barely varying factor is a limit of another law, not a law:
    # (1 + z/b)**c with b and c near 1e5 is exp(z*c/b), which the exp entry states plainly.
    fits = [
        f
        for f in fits + grown
        if (f.function == "exp" or abs(f.c) <= _MAX_POWER) and not _linearised(f, x)
    ]
    fits = sorted({(f.argument, f.function): f for f in fits}.values(), key=lambda f: f.log_rmse)
    return fits[:top]


def _exhaustive(
    x: np.ndarray,
    projected: _Projected,
    inputs: list[int],
    power_inputs: list[int],
    library: tuple[str, ...],
) -> list[ProductFit]:
    """For every function, the best two arguments among all monomials of two or more inputs
    with powers -1, 0 or +1 (and +-2 for up to four inputs, five for ``x``:
    ``(1 - v**2/c**2)**(-1/2)``), scored on a coarse grid, then fitted in full.

    Greedy growth misses arguments whose parts explain nothing alone (no one factor of
    ``g*m*x/(T*k_b)`` in ``exp(-g*m*x/(T*k_b))`` does); the ``3**6`` monomials of six inputs
    cost about a second.
    """
    usable_inputs = [k for k in inputs if not (x[:, k] == 0).any()]
    out = []
    for function in _functions(library):
        scored = []
        squares = len(usable_inputs) <= _SQUARES_INPUTS or (
            function == "x" and len(usable_inputs) <= _SQUARES_INPUTS + 1
        )
        choices = (-2, -1, 0, 1, 2) if squares else (-1, 0, 1)
        for powers in itertools.product(choices, repeat=len(usable_inputs)):
            if sum(p != 0 for p in powers) < 2:
                continue
            argument = tuple((k, p) for k, p in zip(usable_inputs, powers, strict=True) if p)
            scored.append((_grid_score(function, argument, x, projected), argument))
        scored.sort(key=lambda pair: pair[0])
        for _, argument in scored[:2]:
            fit = _best_fit(function, argument, x, projected, power_inputs)
            if fit is not None and math.isfinite(fit.log_rmse):
                out.append(fit)
    return out


def _linearised(fit: ProductFit, x: np.ndarray) -> bool:
    """Whether ``f`` stands in for a simpler function over the rows, as another law's limit:
    its argument barely moves (``exp(0.0002*z) - 0.9998`` is a line), or stays where ``f`` is
    its asymptote (``cosh(20 + z)**-1.2`` is ``exp(-1.2*z)``, ``tanh(9 + z)`` is 1)."""
    if fit.function == "x":
        return False
    u = fit.a * fit.argument_values(x) + fit.b
    if float(np.max(u) - np.min(u)) < _MIN_ARGUMENT_SWING:
        return True
    saturates = _ASYMPTOTIC.get(fit.function)
    if saturates is None:
        return False
    far = u if fit.function == "exp(x)-1" else np.abs(u)  # exp(u) - 1 is exp(u) for large u
    return bool(np.min(far) > saturates)


def _distinct_starts(sse: np.ndarray, a: np.ndarray) -> list[int]:
    """Indices of the best grid point of each of the ``_STARTS`` best values of ``|a|``."""
    starts, seen = [], set()
    for k in np.argsort(sse):
        if not np.isfinite(sse[k]) or len(starts) == _STARTS:
            break
        if abs(a[k]) not in seen:  # sin(-a z - b) = -sin(a z + b): one basin, two points
            seen.add(abs(a[k]))
            starts.append(k)
    return starts


def _grid_score(
    function: str, argument: tuple[tuple[int, int], ...], x: np.ndarray, projected: _Projected
) -> float:
    """The best weighted log-space SSE of ``f`` of ``argument`` on a coarse grid of
    ``(a, b)``, unpolished (inf where ``f`` is undefined at every point)."""
    z = _monomial(x, argument)
    if function == "x":
        a, b = _grid("x", z, even=21)
    else:
        aa, bb = np.meshgrid(_scales(_COARSE_A, z), _COARSE_B, indexing="ij")
        a, b = aa.ravel(), bb.ravel()
    smooth_sse, _ = _grid_sse(function, z, a, b, projected, exact=False)
    return float(np.min(smooth_sse))


def _grow(
    fit: ProductFit,
    x: np.ndarray,
    projected: _Projected,
    inputs: list[int],
    power_inputs: list[int],
) -> ProductFit:
    """``fit`` with its argument grown one input at a time while the log-space RMSE drops
    by a fifth (and stays above float rounding)."""
    while fit.log_rmse > 1e-9 and len(fit.argument) < len(inputs):
        used = {k for k, _ in fit.argument}
        arguments = [
            (*fit.argument, (k, p))
            for k in inputs
            if k not in used and not (x[:, k] == 0).any()
            for p in (1, -1)
        ]
        scores = [_grid_score(fit.function, argument, x, projected) for argument in arguments]
        if not arguments or not math.isfinite(min(scores)):
            break
        best = _best_fit(
            fit.function, arguments[int(np.argmin(scores))], x, projected, power_inputs
        )
        if best is None or not best.log_rmse <= _GROWTH_GAIN * fit.log_rmse:
            break
        fit = best
    return fit


def _polish(
    function: str, x: np.ndarray, projected: _Projected, a0: float, b0: float
) -> tuple[float, float, float] | None:
    """Local search on ``(a, b)`` (``b`` alone for ``"x"``) from a grid point, on
    ``projected``'s residuals: ``(a, b, sse)``, or None where ``f`` is undefined at the start.

    Nelder-Mead on the smooth (floored, so kinked) landscape, Levenberg-Marquardt on the
    exact one (smooth near the law, where it converges in a few steps).
    """
    from scipy.optimize import least_squares, minimize

    code = FUNCTION_CODES.get(function)
    clip = math.nan if projected.clip is None else projected.clip
    out = np.empty(len(x))

    def a_and_b(params: np.ndarray) -> tuple[float, float]:
        return (1.0, float(params[0])) if function == "x" else (float(params[0]), float(params[1]))

    def compiled(params: np.ndarray) -> float:
        """The compiled residual into ``out``; its sum of squares, or -1.0 if undefined."""
        return log_column_residual(
            code,
            x,
            *a_and_b(params),
            clip,
            projected.root_weight,
            projected.q,
            projected.target,
            out,
        )

    def residual(params: np.ndarray) -> np.ndarray:
        if code is not None:
            return np.full(len(x), 1e6) if compiled(params) < 0.0 else out.copy()
        a, b = a_and_b(params)
        column = _columns(function, x, np.array([a]), np.array([b]))[:, 0]
        if not np.isfinite(column).all():
            return np.full(len(x), 1e6)
        return projected.residual(column)

    def jacobian(params: np.ndarray) -> np.ndarray:
        slopes = np.empty((len(x), 2))
        if (
            log_column_jacobian(
                code,
                x,
                *a_and_b(params),
                projected.root_weight,
                projected.q,
                projected.target,
                slopes,
            )
            < 0.0
        ):
            slopes[:] = 0.0  # the residual is the constant 1e6 there
        return slopes[:, 1:] if function == "x" else slopes

    def sse(params: np.ndarray) -> float:
        if code is None:
            return float(np.sum(residual(params) ** 2))
        total = compiled(params)
        return 1e12 * len(x) if total < 0.0 else total

    start = np.array([b0]) if function == "x" else np.array([a0, b0])
    before = sse(start)
    if not math.isfinite(before) or before >= 1e12 * len(x):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if projected.clip is not None:
            result = minimize(
                sse,
                start,
                method="Nelder-Mead",
                options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": _POLISH_EVALUATIONS},
            )
            after = float(result.fun)
        else:
            jac = "2-point" if code is None else jacobian
            result = least_squares(
                residual, start, jac=jac, method="lm", max_nfev=_POLISH_EVALUATIONS
            )
            after = float(np.sum(result.fun**2))
    params, value = (
        (result.x, after) if math.isfinite(after) and after <= before else (start, before)
    )
    if function == "x":
        return 1.0, float(params[0]), value
    return float(params[0]), float(params[1]), value


@dataclass(frozen=True)
class _Signed:
    """A :class:`ProductFit` with its power ``c`` settled and the sign of ``y`` modelled:
    ``y = s0 * prod_{parity} sign(x_i) * exp(log_scale + sum a_i log|x_i|) * f(a z + b)**c``."""

    fit: ProductFit
    s0: int
    parity: tuple[int, ...]  # over every column of x
    input_signs: tuple[int, ...]  # +1 or -1 where a column keeps one sign, else 0
    fractional_power: bool

    def params(self) -> np.ndarray:
        fit = self.fit
        head = [fit.log_scale, *fit.exponents.values(), fit.a, fit.b]
        return np.array(head + ([fit.c] if self.fractional_power else []))

    def with_params(self, params: np.ndarray) -> _Signed:
        fit, inputs = self.fit, list(self.fit.exponents)
        n = len(inputs)
        new = replace(
            fit,
            log_scale=float(params[0]),
            exponents={i: float(e) for i, e in zip(inputs, params[1 : n + 1], strict=True)},
            a=float(params[n + 1]),
            b=float(params[n + 2]),
            c=float(params[n + 3]) if self.fractional_power else fit.c,
        )
        return replace(self, fit=new)

    def predict(self, x: np.ndarray) -> np.ndarray:
        fit = self.fit
        inputs = list(fit.exponents)
        with np.errstate(all="ignore"):
            log_part = fit.log_scale + np.log(np.abs(x[:, inputs])) @ np.array(
                list(fit.exponents.values())
            )
            factor = _numpy_form(fit.function)(fit.a * fit.argument_values(x) + fit.b)
            sign = self.s0 * np.prod(
                np.where(np.array(self.parity, dtype=bool), np.sign(x), 1.0), axis=1
            )
            return sign * np.exp(log_part) * factor**fit.c


def _signed(fit: ProductFit, x: np.ndarray, y: np.ndarray) -> _Signed | None:
    """``fit`` with a whole power where ``c`` is near one and a sign model of ``y`` from the
    rows ``x (n, d)``, ``y (n,)``; None when no sign model explains the sign of ``y``."""
    if fit.function == "exp":  # exp(a z + b)**c is exp(c*a z + c*b): one exponential
        fit = replace(fit, a=fit.a * fit.c, b=fit.b * fit.c, c=1.0)
    c = float(round(fit.c)) if abs(fit.c - round(fit.c)) < _INTEGER_POWER else fit.c
    if c == 0:
        return None
    fit = replace(fit, c=c)
    with np.errstate(all="ignore"):
        inner = _numpy_form(fit.function)(fit.a * fit.argument_values(x) + fit.b)
    fractional = c != int(c)
    if fractional and fit.function == "x" and (inner < 0).all():  # |z - 1| = 1 - z here
        fit = replace(fit, a=-fit.a, b=-fit.b)
        inner = -inner
    if fractional and (inner <= 0).any():
        return None  # a fractional power of a sign-changing factor
    f_sign = np.ones(len(y)) if fractional else np.sign(inner) ** int(c)
    inputs = list(fit.exponents)
    # Looser than the log route's 99%: a factor whose zero is still slightly off (the
    # log-space search ends near, not at, the law) flips the sign of a few rows, which the
    # refit on y then puts right.
    model = _sign_model(np.sign(x[:, inputs]), np.sign(y) * f_sign, _SIGN_AGREEMENT)
    if model is None:
        return None
    s0, parity_inputs = model
    parity = [0] * x.shape[1]
    for i, p in zip(inputs, parity_inputs, strict=True):
        parity[i] = p
    input_signs = tuple(
        1 if (column > 0).all() else -1 if (column < 0).all() else 0 for column in x.T
    )
    return _Signed(fit, s0, tuple(parity), input_signs, fractional)


def _polish_in_y(
    signed: _Signed, x: np.ndarray, y: np.ndarray, fixed: frozenset[int] = frozenset()
) -> tuple[_Signed, float]:
    """The parameters (but those at the positions ``fixed`` of :meth:`_Signed.params`)
    refitted by least squares on ``y`` itself (the log-space fit weighs rows near a zero of
    ``f`` far too much), with the RMSE of ``y`` after."""
    from scipy.optimize import least_squares

    full = signed.params()
    free = np.array([k for k in range(len(full)) if k not in fixed], dtype=int)

    def complete(values: np.ndarray) -> np.ndarray:
        out = full.copy()
        out[free] = values
        return out

    def residual(values: np.ndarray) -> np.ndarray:
        out = (signed.with_params(complete(values)).predict(x) - y) * weight
        return np.where(np.isfinite(out), out, 1e6)

    def rmse(params: np.ndarray) -> float:
        value = float(np.sqrt(np.mean((signed.with_params(params).predict(x) - y) ** 2)))
        return value if math.isfinite(value) else math.inf

    # Relative errors where |y| is large (1/sin(theta/2)**4 spans six decades: absolute ones
    # would fit its few largest rows only), absolute ones near the zeros of y.
    weight = 1.0 / (np.abs(y) + (float(np.median(np.abs(y))) or 1.0))
    before = rmse(full)
    if len(free) == 0:
        return signed, before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            result = least_squares(residual, full[free], method="lm", max_nfev=200 * len(free))
        except (ValueError, np.linalg.LinAlgError):
            return signed, before
    after = rmse(complete(result.x))
    if not after < before:
        return signed, before
    return signed.with_params(complete(result.x)), after


def _snap_powers(
    signed: _Signed, x: np.ndarray, y: np.ndarray, rmse: float
) -> tuple[_Signed, float]:
    """The power law's exponents and a fractional ``c`` snapped to halves or thirds, one at a
    time (nearest first), every other parameter refitted after each, while the RMSE of ``y``
    stays within 1.5x (or 1e-7 of the labels' spread) of what it was.

    The fit's parameters are correlated (over a short range of ``z``, ``b``, ``c`` and ``C``
    trade off), so the constants of a fit exact to float32 can each be off by 1e-5:
    snapping them one by one without a refit, as the symbolic stage's snapping does, fails.
    """
    n = len(signed.fit.exponents)
    positions = list(range(1, n + 1)) + ([n + 3] if signed.fractional_power else [])
    params = signed.params()

    def nearest(value: float) -> float:
        return min((round(value * q) / q for q in (1, 2, 3)), key=lambda v: abs(v - value))

    order = sorted(positions, key=lambda k: abs(params[k] - nearest(params[k])))
    fixed: set[int] = set()
    spread = float(np.std(y)) or 1.0
    for k in order:
        params = signed.params()
        target = nearest(params[k])
        if abs(params[k] - target) > _SNAP_DISTANCE:
            break
        params[k] = target
        trial, trial_rmse = _polish_in_y(signed.with_params(params), x, y, frozenset(fixed | {k}))
        if trial_rmse <= max(1.5 * rmse, rmse + 1e-7 * spread):
            signed, rmse = trial, trial_rmse
            fixed.add(k)
    return signed, rmse


def product_expression(signed: _Signed, symbols: list[Any]) -> Any:
    """The sympy formula of ``y`` for a signed fit, in ``symbols``."""
    fit = signed.fit
    transform = LogTransform(signed.input_signs, signed.s0, signed.parity)
    log_expr = sum(
        (sp.Float(e) * symbols[i] for i, e in fit.exponents.items()), sp.Float(fit.log_scale)
    )
    power = sp.Float(fit.c) if signed.fractional_power else sp.Integer(int(fit.c))
    argument = sp.Mul(*(symbols[k] ** p for k, p in fit.argument))
    factor = _sympy_form(fit.function)(sp.Float(fit.a) * argument + sp.Float(fit.b))
    return transform.to_original(log_expr, symbols) * factor**power


def _product_search(
    dataset: dict[str, torch.Tensor],
    inputs: list[int],
    validation: float,
    library: tuple[str, ...],
    top: int,
) -> tuple[str, Any]:
    """The memo key of :func:`product_formulas`'s search and the search itself (a function of
    no arguments returning ``(signed fit, rmse)`` pairs, best first)."""
    from emp_kan.data.problems import split_validation

    fit_rows, _ = split_validation(dict(dataset), validation)
    x = fit_rows["train_input"].double().numpy()
    y = fit_rows["train_label"].double().numpy()[:, 0]

    def search() -> list[tuple[Any, float]]:
        found = []
        for fit in fit_products(x, y, inputs, tuple(library), top=2 * top):
            signed = _signed(fit, x, y)
            if signed is not None:
                refitted, rmse = _polish_in_y(signed, x, y)
                found.append(_snap_powers(refitted, x, y, rmse))
        return sorted(found, key=lambda pair: pair[1])

    return digest(x, y, list(inputs), list(library), top), search


def product_search_key(
    dataset: dict[str, torch.Tensor],
    inputs: list[int],
    validation: float,
    library: tuple[str, ...],
    top: int = 3,
) -> str:
    """The memo key under which :func:`product_formulas` with these arguments keeps its
    search (the key :func:`product_search_ahead` returns), without searching."""
    return _product_search(dataset, inputs, validation, library, top)[0]


def product_search_ahead(
    dataset: dict[str, torch.Tensor],
    inputs: list[int],
    validation: float,
    library: tuple[str, ...],
    top: int = 3,
) -> tuple[str, Any]:
    """What :func:`product_formulas` with these arguments will search, done now: ``(key,
    result)`` for :func:`emp_kan._runtime.memo.remember` (a forked child with time to spare
    runs it)."""
    key, search = _product_search(dataset, inputs, validation, library, top)
    return key, search()


def product_formulas(
    formula: Any,
    dataset: dict[str, torch.Tensor],
    inputs: list[int],
    validation: float,
    library: tuple[str, ...],
    top: int = 3,
) -> list[Any]:
    """The best power-law-times-one-function readings of the data as formulas of ``y``.

    Parameters
    ----------
    formula : SymbolicFormula
        A formula of ``y`` in the user's variables (its variables and bookkeeping are reused).
    dataset : dict of torch.Tensor
        The pykan dataset of ``y``.
    inputs : list of int
        Columns with a live edge in the pruned KAN.
    validation : float
        Share of training rows that validate (and never fit).
    library : tuple of str
    top : int

    Returns
    -------
    list of SymbolicFormula
        Constants snapped on the validation rows, errors measured on every split.
    """
    key, search = _product_search(dataset, inputs, validation, library, top)
    # The search reads only the data: in discover both methods ask for it on the same rows.
    polished = recall("products", key, search, keep=list, restore=list)
    out, seen = [], set()
    for signed, _ in polished:  # sin(t) and cos(t - pi/2) snap to one formula: list it once
        found = formula_of_expression(
            formula, product_expression(signed, formula.variables), dataset, validation, edges=[]
        )
        if str(found.expression) not in seen:
            seen.add(str(found.expression))
            out.append(found)
        if len(out) == top:
            break
    return out
