"""The closed-form grid over ``(a, b)`` in log space: the fixed columns projected out once,
every grid point scored by the compiled kernels, the best points polished by Nelder-Mead."""

from __future__ import annotations

import math
import warnings

import numpy as np

from emp_kan.symbolic.products import kernels
from emp_kan.symbolic.products.forms import ProductFit, log_abs, monomial
from emp_kan.symbolic.products.kernels import (
    log_column_jacobian,
    log_column_residual,
)
from emp_kan.symbolic.registry import library_function

__all__ = [
    "B_GRID",
    "Projected",
    "ab_grid",
    "best_fit",
    "grid_columns",
    "grid_score",
    "grid_scores",
    "polish_fit",
]


_A_GRID = np.arange(0.25, 6.01, 0.25)  # a step of 1/4: sin(2.5*v) over a few periods


B_GRID = np.linspace(-math.pi, math.pi, 25)


B_GRID = (B_GRID - B_GRID[::-1]) / 2  # exactly odd: (a, b) and (-a, -b) pair up bitwise


_CLIP = math.log(0.05)  # the smooth search floors logs at 5% of their median


_STARTS = 2  # per landscape


_POLISH_EVALUATIONS = 100


_COARSE_A = np.array([0.5, 1.0, 2.0])


_COARSE_B = np.linspace(-math.pi, math.pi, 9)


class Projected:
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
        self.smooth = self if clip is not None else Projected(fixed, target, weight, _CLIP)
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


def grid_columns(function: str, z: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log|f(a*z + b)|`` for every pair ``(a[k], b[k])``: ``(n, m)``, NaN where ``f`` is
    undefined."""
    with np.errstate(all="ignore"):
        values = library_function(function).numpy(np.outer(z, a) + b)
    return log_abs(values)


def grid_scores(
    function: str, z: np.ndarray, a: np.ndarray, b: np.ndarray, projected: Projected, exact: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The weighted SSE of ``f(a[k]*z + b[k])`` for every grid point on the smooth landscape
    and (with ``exact``) on the exact one: ``(m,)`` each, inf where ``f`` is undefined."""
    every = None
    if library_function(function).mirrored:  # f(-u) = +-f(u): (a, b) and (-a, -b) give one column
        sign = np.sign(a)
        _, first, every = np.unique(
            np.column_stack([a * sign, b * sign]), axis=0, return_index=True, return_inverse=True
        )
        a, b = a[first], b[first]
    with np.errstate(all="ignore"):
        logs = np.log(np.abs(library_function(function).numpy(np.outer(a, z) + b[:, None])))
    smooth_sse = np.empty(len(a))
    exact_sse = np.empty(len(a) if exact else 0)
    kernels.grid_sse(
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


def ab_grid(function: str, z: np.ndarray, even: int = 61) -> tuple[np.ndarray, np.ndarray]:
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
    aa, bb = np.meshgrid(a, B_GRID, indexing="ij")
    return aa.ravel(), bb.ravel()


def _scales(grid: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``a`` values for ``f(a*z + b)``: ``grid`` as it is (Feynman-style inputs are of order 1,
    and ``sin(theta/2)`` wants exactly 0.5) and divided by the typical ``|z|`` (a monomial
    argument can be of any size), both signs."""
    scale = float(np.median(np.abs(z))) or 1.0
    a = grid if 0.5 < scale < 2.0 else np.concatenate([grid, grid / scale])
    return np.concatenate([a, -a])


def best_fit(
    function: str,
    argument: tuple[tuple[int, int], ...],
    x: np.ndarray,
    projected: Projected,
    power_inputs: list[int],
) -> ProductFit | None:
    """The grid's best ``(a, b)`` for ``f`` of ``argument``, polished; None if ``f`` is
    undefined on the rows for every grid point."""
    z = monomial(x, argument)
    if not np.isfinite(z).all() or len(np.unique(z)) < 5:
        return None
    a, b = ab_grid(function, z)
    smooth_sse, exact_sse = grid_scores(function, z, a, b, projected, exact=True)
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
                start = polish_fit(function, z, landscape, *start)
                if start is None:
                    continue
                start = start[:2]
            end = polish_fit(function, z, projected, *start)
            if end is not None:
                ends.append(end)
    if not ends:
        return None
    a_z, b_z, _ = min(ends, key=lambda p: p[2])
    column = grid_columns(function, z, np.array([a_z]), np.array([b_z]))
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


def grid_score(
    function: str, argument: tuple[tuple[int, int], ...], x: np.ndarray, projected: Projected
) -> float:
    """The best weighted log-space SSE of ``f`` of ``argument`` on a coarse grid of
    ``(a, b)``, unpolished (inf where ``f`` is undefined at every point)."""
    z = monomial(x, argument)
    if function == "x":
        a, b = ab_grid("x", z, even=21)
    else:
        aa, bb = np.meshgrid(_scales(_COARSE_A, z), _COARSE_B, indexing="ij")
        a, b = aa.ravel(), bb.ravel()
    smooth_sse, _ = grid_scores(function, z, a, b, projected, exact=False)
    return float(np.min(smooth_sse))


class _Landscape:
    """The residuals of one function's column ``f(a*x + b)`` against ``projected``, as
    functions of ``(a, b)`` (``b`` alone for ``"x"``): compiled where the function has a
    kernel, else through numpy; undefined points are a constant residual of 1e6."""

    def __init__(self, function: str, x: np.ndarray, projected: Projected) -> None:
        self.function, self.x, self.projected = function, x, projected
        self.code = library_function(function).kernel
        self.clip = math.nan if projected.clip is None else projected.clip
        self.out = np.empty(len(x))

    def a_and_b(self, params: np.ndarray) -> tuple[float, float]:
        if self.function == "x":
            return 1.0, float(params[0])
        return float(params[0]), float(params[1])

    def compiled(self, params: np.ndarray) -> float:
        """The compiled residual into ``out``; its sum of squares, or -1.0 if undefined."""
        p = self.projected
        return log_column_residual(
            self.code,
            self.x,
            *self.a_and_b(params),
            self.clip,
            p.root_weight,
            p.q,
            p.target,
            self.out,
        )

    def residual(self, params: np.ndarray) -> np.ndarray:
        if self.code is not None:
            return np.full(len(self.x), 1e6) if self.compiled(params) < 0.0 else self.out.copy()
        a, b = self.a_and_b(params)
        column = grid_columns(self.function, self.x, np.array([a]), np.array([b]))[:, 0]
        if not np.isfinite(column).all():
            return np.full(len(self.x), 1e6)
        return self.projected.residual(column)

    def jacobian(self, params: np.ndarray) -> np.ndarray:
        p = self.projected
        slopes = np.empty((len(self.x), 2))
        defined = log_column_jacobian(
            self.code, self.x, *self.a_and_b(params), p.root_weight, p.q, p.target, slopes
        )
        if defined < 0.0:
            slopes[:] = 0.0  # the residual is the constant 1e6 there
        return slopes[:, 1:] if self.function == "x" else slopes

    def sse(self, params: np.ndarray) -> float:
        if self.code is None:
            return float(np.sum(self.residual(params) ** 2))
        total = self.compiled(params)
        return 1e12 * len(self.x) if total < 0.0 else total


def polish_fit(
    function: str, x: np.ndarray, projected: Projected, a0: float, b0: float
) -> tuple[float, float, float] | None:
    """Local search on ``(a, b)`` (``b`` alone for ``"x"``) from a grid point, on
    ``projected``'s residuals: ``(a, b, sse)``, or None where ``f`` is undefined at the start.

    Nelder-Mead on the smooth (floored, so kinked) landscape, Levenberg-Marquardt on the
    exact one (smooth near the law, where it converges in a few steps).
    """
    from scipy.optimize import least_squares, minimize

    landscape = _Landscape(function, x, projected)
    start = np.array([b0]) if function == "x" else np.array([a0, b0])
    before = landscape.sse(start)
    if not math.isfinite(before) or before >= 1e12 * len(x):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if projected.clip is not None:
            result = minimize(
                landscape.sse,
                start,
                method="Nelder-Mead",
                options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": _POLISH_EVALUATIONS},
            )
            after = float(result.fun)
        else:
            jac = "2-point" if landscape.code is None else landscape.jacobian
            result = least_squares(
                landscape.residual, start, jac=jac, method="lm", max_nfev=_POLISH_EVALUATIONS
            )
            after = float(np.sum(result.fun**2))
    params, value = (
        (result.x, after) if math.isfinite(after) and after <= before else (start, before)
    )
    a, b = landscape.a_and_b(params)
    return a, b, value
