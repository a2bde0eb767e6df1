"""Fit one edge's learned curve with ``y = c * f(a * x + b) + d`` for every library function.

Pure numpy/scipy: samples in, ranked candidates out. The search for each function is

1. a vectorised grid over ``(a, b)`` (on inputs scaled to [-1, 1]) where ``(c, d)`` come from a
   closed-form linear least squares, scored by the squared correlation of ``f(a x + b)`` and
   ``y``;
2. a short Levenberg-Marquardt refinement of ``(a, b)`` from the best few grid points, with
   ``(c, d)`` re-solved in closed form after each step; every (function, start) pair of the
   library is refined in the same batched numpy operations;
3. the error on held-out samples (every fifth sample is held out).

A fit whose ``f(a x + b)`` varies by less than ``DEGENERATE_RATIO`` of its magnitude over the
samples is left out: it imitates a polynomial through cancellation (see ``_degenerate``).

Candidates are ranked by ``cost = log10(max(nrmse, NRMSE_FLOOR)) + COMPLEXITY_PENALTY *
complexity``, where ``nrmse`` is the held-out RMSE divided by the standard deviation of ``y``:
each unit of complexity must buy a 10**0.25 (about 1.8x) smaller error, and errors below
``NRMSE_FLOOR`` count as equal (the spline itself is only an approximation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.registry import library_function, library_names

__all__ = [
    "COMPLEXITY_PENALTY",
    "NRMSE_FLOOR",
    "EdgeCandidate",
    "check_library",
    "fit_edge",
    "numpy_derivative",
    "numpy_function",
]

NRMSE_FLOOR = 1e-3
COMPLEXITY_PENALTY = 0.25
DEGENERATE_RATIO = 1e-3


_A_GRID = np.array([0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0])
_B_GRID = np.linspace(-4.0, 4.0, 17)


def check_library(library: Sequence[str]) -> tuple[str, ...]:
    """Validate function names against the registry; ValueError lists the valid ones."""
    library = tuple(library)
    if not library:
        raise ValueError("the function library is empty; give at least one function name")
    unknown = [name for name in library if name not in library_names()]
    if unknown:
        raise ValueError(
            f"unknown library function(s) {', '.join(map(repr, unknown))}; valid names: "
            + ", ".join(sorted(library_names()))
        )
    return library


def numpy_function(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The numpy version of library function ``name``."""
    return library_function(name).numpy


def numpy_derivative(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The derivative ``f'(u)`` of library function ``name``, in numpy."""
    return library_function(name).derivative


@dataclass(frozen=True)
class EdgeCandidate:
    """One fitted function for an edge: ``y = c * f(a * x + b) + d``.

    ``nrmse`` is the held-out RMSE over std(y) of the fit made without the held-out samples;
    ``r2 = 1 - nrmse**2``. The returned ``c, d`` are then solved on every sample.
    """

    function: str
    a: float
    b: float
    c: float
    d: float
    nrmse: float
    r2: float
    complexity: int
    cost: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``c * f(a * x + b) + d`` on ``x`` (any shape)."""
        with np.errstate(all="ignore"):
            return self.c * numpy_function(self.function)(self.a * x + self.b) + self.d


def _degenerate(u: np.ndarray) -> bool:
    """Whether ``f(a x + b)`` (values ``u``) varies by under 1/1000 of its size on the data.

    Such a fit uses the function in a nearly flat stretch (``cos`` near its top, ``exp`` of a
    tiny slope) to imitate a polynomial through a huge ``c`` and a cancelling ``d``. It is a
    worse description than the polynomial, and once composed it costs digits or overflows float
    arithmetic (seen on Feynman I.12.4: a ``1e7984`` coefficient).
    """
    spread = float(u.std())
    return spread <= DEGENERATE_RATIO * float(np.abs(u).max())


def _cost(nrmse: float, complexity: int) -> float:
    return math.log10(max(nrmse, NRMSE_FLOOR)) + COMPLEXITY_PENALTY * complexity


def _linear_cd(u: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Closed-form ``(c, d)`` minimising ``|c u + d - y|`` for one ``u (n,)``."""
    c, d = _linear_cd_rows(u[None, :], y)
    return float(c[0]), float(d[0])


def _grid_starts(f, xs: np.ndarray, y: np.ndarray, n_starts: int) -> list[tuple[float, float]]:
    """Best (a, b) grid points for scaled inputs ``xs`` by squared correlation, shape-free."""
    a = np.concatenate([_A_GRID, -_A_GRID])
    aa, bb = np.meshgrid(a, _B_GRID, indexing="ij")
    aa, bb = aa.ravel(), bb.ravel()
    with np.errstate(all="ignore"):
        u = f(aa[:, None] * xs[None, :] + bb[:, None])  # (combos, n)
    finite = np.isfinite(u).all(axis=1)
    u = np.where(np.isfinite(u), u, 0.0)
    uc = u - u.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    var_u = (uc**2).mean(axis=1)
    cov = (uc * yc[None, :]).mean(axis=1)
    with np.errstate(all="ignore"):
        r2 = np.where(finite & (var_u > 1e-12), cov**2 / (var_u * (yc**2).mean() + 1e-300), -1.0)
    order = np.argsort(-r2, kind="stable")[:n_starts]
    return [(float(aa[k]), float(bb[k])) for k in order if r2[k] > -1.0]


def _linear_cd_rows(g: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ``(c, d)`` minimising ``|c g + d - y|`` for each row of ``g (m, n)``."""
    gm = g.mean(axis=1, keepdims=True)
    gc = g - gm
    var = (gc**2).mean(axis=1)
    cov = (gc * (y - y.mean())[None, :]).mean(axis=1)
    c = np.where(var > 1e-300, cov / np.where(var > 1e-300, var, 1.0), 0.0)
    return c, y.mean() - c * gm[:, 0]


def _refine_batch(names, xs, y, a0, b0, iterations: int = 40):
    """Levenberg-Marquardt on ``(a, b)`` for many (function, start) pairs at once.

    Each row ``k`` fits ``y ~ c f_k(a_k xs + b_k) + d``; ``(c, d)`` are re-solved in closed form
    after every step (variable projection), so only ``(a, b)`` are searched. All rows share
    one set of numpy operations per iteration; the functions are applied group by group.

    Parameters
    ----------
    names : sequence of str, ``(m,)``
    xs, y : ndarray, ``(n,)``
    a0, b0 : ndarray, ``(m,)``
        Starting points; rows whose start is not finite on ``xs`` come back non-finite.
    iterations : int

    Returns
    -------
    a, b, c, d : ndarray, ``(m,)``
    """
    names = list(names)
    groups = {name: np.array([k for k, n in enumerate(names) if n == name]) for name in names}
    a, b = np.array(a0, dtype=np.float64), np.array(b0, dtype=np.float64)

    def values(a, b):
        """``f(u)`` and ``f'(u)`` for ``u = a xs + b``, each ``(m, n)``."""
        u = a[:, None] * xs[None, :] + b[:, None]
        g, dg = np.empty_like(u), np.empty_like(u)
        for name, rows in groups.items():
            g[rows] = numpy_function(name)(u[rows])
            dg[rows] = numpy_derivative(name)(u[rows])
        return g, dg

    def sse_of(g):
        c, d = _linear_cd_rows(np.where(np.isfinite(g), g, 0.0), y)
        sse = np.sum((c[:, None] * g + d[:, None] - y[None, :]) ** 2, axis=1)
        return np.where(np.isfinite(sse), sse, np.inf), c, d

    with np.errstate(all="ignore"):
        g, dg = values(a, b)
        sse, c, d = sse_of(g)
        damping = np.full(a.shape, 1e-3)
        for _ in range(iterations):
            r = c[:, None] * g + d[:, None] - y[None, :]  # (m, n)
            cdg = c[:, None] * dg
            jac = np.stack([cdg * xs[None, :], cdg, g, np.ones_like(g)], axis=2)  # (m, n, 4)
            jac = np.where(np.isfinite(jac), jac, 0.0)
            jtj = jac.transpose(0, 2, 1) @ jac  # (m, 4, 4)
            jtr = (jac.transpose(0, 2, 1) @ np.where(np.isfinite(r), r, 0.0)[:, :, None])[:, :, 0]
            diag = np.diagonal(jtj, axis1=1, axis2=2) + 1e-12
            system = jtj + (damping[:, None] * diag)[:, :, None] * np.eye(4)[None]
            try:
                step = np.linalg.solve(system, -jtr[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                step = np.zeros_like(jtr)  # a singular row stops every row this once
            a_t, b_t = a + step[:, 0], b + step[:, 1]
            g_t, dg_t = values(a_t, b_t)
            sse_t, c_t, d_t = sse_of(g_t)
            better = np.isfinite(sse_t) & (sse_t < sse) & np.isfinite(dg_t).all(axis=1)
            a, b = np.where(better, a_t, a), np.where(better, b_t, b)
            c, d = np.where(better, c_t, c), np.where(better, d_t, d)
            g, dg = np.where(better[:, None], g_t, g), np.where(better[:, None], dg_t, dg)
            gain = np.where(better, (sse - sse_t) / np.maximum(sse, 1e-300), 0.0)
            sse = np.where(better, sse_t, sse)
            damping = np.where(better, damping / 3.0, damping * 4.0)
            if np.all((gain < 1e-12) & ((damping > 1e8) | better)):
                break  # every row has converged or cannot move
    finite = np.isfinite(g).all(axis=1)
    nan = np.full(a.shape, np.nan)
    return (
        np.where(finite, a, nan),
        np.where(finite, b, nan),
        np.where(finite, c, nan),
        np.where(finite, d, nan),
    )


def fit_edge(
    x: np.ndarray,
    y: np.ndarray,
    library: Sequence[str] = DEFAULT_LIBRARY,
    n_starts: int = 2,
    max_samples: int = 200,
) -> list[EdgeCandidate]:
    """Fit every library function to one edge's samples; best candidate first.

    Parameters
    ----------
    x, y : ndarray, ``(n,)``
        The edge's inputs and outputs.
    library : sequence of str
        Function names (see :data:`DEFAULT_LIBRARY`).
    n_starts : int
        Grid points refined per function.
    max_samples : int
        At most this many samples are used (evenly spaced in sorted ``x``).

    Returns
    -------
    list of EdgeCandidate, sorted by cost; never empty (the constant is always fitted).
    Functions that cannot be evaluated on the data's range (``sqrt`` of negatives, ``1/x``
    through 0, ...) for every start are left out. Samples where ``x`` or ``y`` is not
    finite are left out; with fewer than two left, the one candidate is the constant 0.
    """
    library = check_library(library)
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    # A layer fixed before this one can leave NaN on some rows (a refit that diverged); the
    # edge is fitted where it is defined, and is a constant 0 where it is defined nowhere.
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.sum() < 2:
        return [EdgeCandidate("0", 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0, _cost(1.0, 0))]
    x, y = x[finite], y[finite]
    all_x, all_y = x, y
    order = np.argsort(x, kind="stable")
    if x.size > max_samples:
        order = order[np.linspace(0, x.size - 1, max_samples).astype(int)]
    x, y = x[order], y[order]
    held = np.zeros(x.size, dtype=bool)
    held[2::5] = True
    if held.all() or not held.any():
        held[:] = False
    fit_x, fit_y = x[~held], y[~held]
    eval_x, eval_y = (x[held], y[held]) if held.any() else (x, y)
    std_y = float(y.std())
    if std_y <= 1e-12 * max(1.0, float(np.abs(y).max())):
        mean = float(all_y.mean())
        return [EdgeCandidate("0", 0.0, 0.0, 0.0, mean, 0.0, 1.0, 0, _cost(0.0, 0))]
    refined = _refined_starts(library, fit_x, fit_y, n_starts)
    out = []
    for name in library:
        f = numpy_function(name)
        if name == "0":
            params = [(0.0, 0.0, 0.0, float(all_y.mean()))]
        elif name == "x":
            c, d = _linear_cd(fit_x, fit_y)
            params = [(1.0, 0.0, c, d)]
        else:
            params = refined.get(name, [])
        best = _best_on_held_out(name, f, params, (fit_x, fit_y), (eval_x, eval_y), std_y)
        if best is None:
            continue
        nrmse, a, b, c, d = best
        if name != "0":
            # selected on held-out error; the final linear part uses every sample
            with np.errstate(all="ignore"):
                u_all = f(a * all_x + b)
            if np.isfinite(u_all).all():
                c, d = _linear_cd(u_all, all_y)
        complexity = library_function(name).complexity
        out.append(
            EdgeCandidate(
                name,
                float(a),
                float(b),
                float(c),
                float(d),
                nrmse,
                1.0 - nrmse**2,
                complexity,
                _cost(nrmse, complexity),
            )
        )
    if not out:  # no function of the library is defined on these samples
        mean = float(all_y.mean())
        out.append(EdgeCandidate("0", 0.0, 0.0, 0.0, mean, 1.0, 0.0, 0, _cost(1.0, 0)))
    out.sort(key=lambda cand: (cand.cost, cand.complexity))
    return _polish(out, all_x, all_y, top=3)


def _refined_starts(
    library: Sequence[str], fit_x: np.ndarray, fit_y: np.ndarray, n_starts: int
) -> dict[str, list[tuple[float, float, float, float]]]:
    """Grid starts for every curved function, then one batched refinement of all of them:
    ``{name: [(a, b, c, d), ...]}`` in unscaled inputs, finite ones only."""
    mx = float(fit_x.mean())
    sx = float(np.abs(fit_x - mx).max()) or 1.0
    xs = (fit_x - mx) / sx
    starts = [
        (name, a_s, b_s)
        for name in library
        if name not in ("0", "x")
        for a_s, b_s in _grid_starts(numpy_function(name), xs, fit_y, n_starts)
    ]
    refined: dict[str, list[tuple[float, float, float, float]]] = {}
    if starts:
        names, a0, b0 = zip(*starts, strict=True)
        ra, rb, rc, rd = _refine_batch(names, xs, fit_y, np.array(a0), np.array(b0))
        for name, a_s, b_s, c, d in zip(names, ra, rb, rc, rd, strict=True):
            if np.isfinite([a_s, b_s, c, d]).all():
                # back to unscaled inputs: a_s * (x - mx) / sx + b_s = a x + b
                refined.setdefault(name, []).append((a_s / sx, b_s - a_s * mx / sx, c, d))
    return refined


def _best_on_held_out(
    name: str,
    f: Callable[[np.ndarray], np.ndarray],
    params: list[tuple[float, float, float, float]],
    fit_rows: tuple[np.ndarray, np.ndarray],
    eval_rows: tuple[np.ndarray, np.ndarray],
    std_y: float,
) -> tuple[float, float, float, float, float] | None:
    """``(nrmse, a, b, c, d)`` of the parameters with the lowest error on the held-out samples,
    among those finite on every sample and not degenerate; None if there is none."""
    (fit_x, _), (eval_x, eval_y) = fit_rows, eval_rows
    best = None
    for a, b, c, d in params:
        with np.errstate(all="ignore"):
            pred = c * f(a * eval_x + b) + d
            u_fit = f(a * fit_x + b)
            fit_pred = c * u_fit + d
        if not (np.isfinite(pred).all() and np.isfinite(fit_pred).all()):
            continue
        if name != "0" and _degenerate(u_fit):
            continue
        nrmse = float(np.sqrt(np.mean((pred - eval_y) ** 2)) / std_y)
        if best is None or nrmse < best[0]:
            best = (nrmse, a, b, c, d)
    return best


def _polish(cands: list[EdgeCandidate], x: np.ndarray, y: np.ndarray, top: int):
    """Refine the first ``top`` candidates' ``(a, b, c, d)`` on every sample; ranking stays."""
    chosen = [k for k, c in enumerate(cands[:top]) if c.function not in ("0", "x")]
    if not chosen:
        return cands
    mx = float(x.mean())
    sx = float(np.abs(x - mx).max()) or 1.0
    xs = (x - mx) / sx
    a0 = np.array([cands[k].a * sx for k in chosen])
    b0 = np.array([cands[k].b + cands[k].a * mx for k in chosen])
    ra, rb, rc, rd = _refine_batch([cands[k].function for k in chosen], xs, y, a0, b0)
    out = list(cands)
    for k, a_s, b_s, c, d in zip(chosen, ra, rb, rc, rd, strict=True):
        cand = cands[k]
        a, b = float(a_s / sx), float(b_s - a_s * mx / sx)
        with np.errstate(all="ignore"):
            new_sse = float(np.sum((c * numpy_function(cand.function)(a * x + b) + d - y) ** 2))
        old_sse = float(np.sum((cand.predict(x) - y) ** 2))
        if np.isfinite(new_sse) and new_sse < old_sse:
            out[k] = EdgeCandidate(
                cand.function,
                a,
                b,
                float(c),
                float(d),
                cand.nrmse,
                cand.r2,
                cand.complexity,
                cand.cost,
            )
    return out
