"""The compiled inner loops of the product search (:mod:`emp_kan.symbolic.products.search`): the
residual of one column ``log|f(a*z + b)|`` projected against the fixed columns, its Jacobian in
``(a, b)``, and the sums of squares of a whole grid of such columns (whose logs numpy computes).

The search polishes every grid start with a few hundred evaluations of this residual, each
on a single column of a few hundred rows. In numpy each evaluation is a dozen array calls
whose dispatch costs more than their arithmetic; here it is one loop. The arithmetic is the
numpy path's, in the same order where it matters (floor, weight, projection), so the two agree
to rounding: the transcendental functions and the sums may differ in the last bits
(``tests/test_product_kernels.py``).
"""

from __future__ import annotations

import math

import numpy as np

from emp_kan._runtime.jit import compiled

__all__ = ["LOG_FLOOR", "grid_sse", "log_column_jacobian", "log_column_residual"]


LOG_FLOOR = -30.0  # log|f| where f is 0 underflows to this, never -inf


@compiled(nogil=True)
def _apply(code, u):  # pragma: no cover
    """``f(u)`` for the function whose registry entry has ``kernel == code``
    (:class:`emp_kan.symbolic.registry.LibraryFunction`; NaN outside its domain, as numpy's)."""
    if code == 0:
        return u
    if code == 1:
        return math.exp(u)
    if code == 2:
        return math.log(u) if u >= 0.0 else math.nan
    if code == 3:
        return math.sin(u)
    if code == 4:
        return math.cos(u)
    if code == 5:
        return math.tan(u)
    if code == 6:
        return math.tanh(u)
    if code == 7:
        return math.asin(u) if abs(u) <= 1.0 else math.nan
    if code == 8:
        return math.acos(u) if abs(u) <= 1.0 else math.nan
    if code == 9:
        return math.atan(u)
    if code == 10:
        if abs(u) < 1.0:
            return math.atanh(u)
        return math.copysign(math.inf, u) if abs(u) == 1.0 else math.nan
    if code == 11:
        return math.exp(-(u * u))
    if code == 12:
        return math.expm1(u)
    return math.cosh(u)


@compiled(nogil=True)
def _median_of_every_4th(column):  # pragma: no cover
    """``np.median(column[::4])``, bitwise: two quickselects on a copy. (numba's own median
    adds about a second to every process's compile.)"""
    values = column[::4].copy()
    m = values.shape[0]
    half = m // 2
    upper = _select(values, half)
    if m % 2:
        return upper
    return (_select(values, half - 1) + upper) / 2.0


@compiled(nogil=True)
def _select(values, k):  # pragma: no cover
    """The ``k``-th smallest of ``values`` (reordered in place; no NaN), Hoare's quickselect."""
    low = 0
    high = values.shape[0] - 1
    while low < high:
        pivot = values[(low + high) // 2]
        i = low
        j = high
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if k <= j:
            high = j
        elif k >= i:
            low = i
        else:
            return values[k]
    return values[k]


@compiled(nogil=True)
def log_column_residual(code, z, a, b, clip, root_weight, q, target, residual):  # pragma: no cover
    """Fill ``residual (n,)`` with the weighted residual of ``target (n,)`` once the column
    ``log|f(a*z + b)|`` is fitted, and return its sum of squares; -1.0 where the column is
    not finite at some row (``f`` undefined there), with ``residual`` unspecified.

    Parameters
    ----------
    code : int
        ``f``'s ``kernel`` code in the registry.
    z : ndarray (n,)
        The argument's values on the rows.
    a, b : float
    clip : float
        With a finite ``clip``, the column is first floored at the median of every 4th row
        plus ``clip`` (the smooth landscape); NaN for none.
    root_weight : ndarray (n,)
        Square roots of the rows' weights.
    q : ndarray (n, p)
        Orthonormal basis of the weighted fixed columns, which are projected out.
    target : ndarray (n,)
        The weighted target with the fixed columns projected out.
    residual : ndarray (n,)
        Output.
    """
    n = z.shape[0]
    column = np.empty(n)
    for r in range(n):
        value = math.log(abs(_apply(code, a * z[r] + b)))
        if not math.isfinite(value):
            return -1.0
        column[r] = max(value, LOG_FLOOR)
    if not math.isnan(clip):
        floor = _median_of_every_4th(column) + clip
        for r in range(n):
            column[r] = max(column[r], floor)
    norm, dot = _project(column, root_weight, q, target, n, q.shape[1])
    total = 0.0
    if norm <= 1e-12 * n:
        for r in range(n):
            residual[r] = target[r]
            total += target[r] * target[r]
        return total
    gain = dot / norm
    for r in range(n):
        residual[r] = target[r] - column[r] * gain
        total += residual[r] * residual[r]
    return total


@compiled(nogil=True)
def grid_sse(logs, clip, root_weight, q, target, exact, smooth):  # pragma: no cover
    """The weighted sums of squares of :func:`log_column_residual` for every grid point at
    once, on both landscapes: ``exact (m,)`` with the column as it is, ``smooth (m,)`` with it
    floored by ``clip``; inf where the column is not finite at some row. ``exact`` may have
    length 0 (not wanted).

    ``logs (m, n)`` holds ``log|f(a[k]*z + b[k])|`` row by row, computed by numpy, whose
    vectorised transcendental functions are several times faster than the scalar ones here.
    """
    m, n = logs.shape
    p = q.shape[1]
    target_ss = 0.0
    for r in range(n):
        target_ss += target[r] * target[r]
    column = np.empty(n)
    floored = np.empty(n)
    for k in range(m):
        usable = True
        for r in range(n):
            value = logs[k, r]
            if not math.isfinite(value):
                usable = False
                break
            column[r] = max(value, LOG_FLOOR)
        if not usable:
            smooth[k] = math.inf
            if exact.shape[0]:
                exact[k] = math.inf
            continue
        floor = _median_of_every_4th(column) + clip
        for r in range(n):
            floored[r] = max(column[r], floor)
        smooth[k] = _projected_sse(floored, root_weight, q, target, target_ss, n, p)
        if exact.shape[0]:
            exact[k] = _projected_sse(column, root_weight, q, target, target_ss, n, p)
    return 0


@compiled(nogil=True, inline="always")
def _project(column, root_weight, q, target, n, p):  # pragma: no cover
    """Weight ``column (n,)`` and project the fixed columns ``q (n, p)`` out of it, in place;
    returns its squared norm and its dot product with ``target``."""
    along = np.zeros(p)
    for r in range(n):
        column[r] *= root_weight[r]
        for j in range(p):
            along[j] += q[r, j] * column[r]
    norm = 0.0
    dot = 0.0
    for r in range(n):
        moved = column[r]
        for j in range(p):
            moved -= q[r, j] * along[j]
        column[r] = moved
        norm += moved * moved
        dot += moved * target[r]
    return norm, dot


@compiled(nogil=True, inline="always")
def _projected_sse(column, root_weight, q, target, target_ss, n, p):  # pragma: no cover
    """``target_ss`` less what the weighted, projected ``column`` explains (overwritten)."""
    norm, dot = _project(column, root_weight, q, target, n, p)
    if norm > 1e-12 * n:
        return target_ss - dot * dot / norm
    return target_ss


@compiled(nogil=True)
def _log_slope(code, u, value):  # pragma: no cover
    """``d log|f(u)| / du = f'(u) / f(u)`` at ``u``, where ``value = f(u)`` (nonzero)."""
    if code == 0:
        return 1.0 / u
    if code == 1:
        return 1.0
    if code == 2:
        return 1.0 / (u * value)
    if code == 3:
        return math.cos(u) / value
    if code == 4:
        return -math.sin(u) / value
    if code == 5:
        return (1.0 + value * value) / value
    if code == 6:
        return (1.0 - value * value) / value
    if code == 7:
        return 1.0 / (math.sqrt(1.0 - u * u) * value)
    if code == 8:
        return -1.0 / (math.sqrt(1.0 - u * u) * value)
    if code == 9:
        return 1.0 / ((1.0 + u * u) * value)
    if code == 10:
        return 1.0 / ((1.0 - u * u) * value)
    if code == 11:
        return -2.0 * u
    if code == 12:
        return math.exp(u) / value
    return math.sinh(u) / value


@compiled(nogil=True)
def log_column_jacobian(code, z, a, b, root_weight, q, target, jacobian):  # pragma: no cover
    """Fill ``jacobian (n, 2)`` with the derivatives of :func:`log_column_residual`'s residual
    (exact landscape: no ``clip``) by ``a`` and ``b``; returns -1.0 where the column is not
    finite at some row (``jacobian`` unspecified), else 0.0.

    With ``m`` the weighted, projected column, ``g = m.t / m.m`` and the residual ``t - g m``,
    the derivative along ``dm`` is ``-(g dm + m (dm.t - 2 g m.dm) / m.m)``; a row floored at
    :data:`LOG_FLOOR` does not move.
    """
    n = z.shape[0]
    p = q.shape[1]
    column = np.empty(n)
    moves = np.zeros((n, 2))
    for r in range(n):
        u = a * z[r] + b
        value = _apply(code, u)
        log_value = math.log(abs(value))
        if not math.isfinite(log_value):
            return -1.0
        if log_value > LOG_FLOOR:
            slope = _log_slope(code, u, value) * root_weight[r]
            moves[r, 0] = slope * z[r]
            moves[r, 1] = slope
        column[r] = max(log_value, LOG_FLOOR) * root_weight[r]
    along = np.zeros((p, 3))
    for r in range(n):
        for j in range(p):
            along[j, 0] += q[r, j] * column[r]
            along[j, 1] += q[r, j] * moves[r, 0]
            along[j, 2] += q[r, j] * moves[r, 1]
    norm = 0.0
    dot = 0.0
    for r in range(n):
        for j in range(p):
            column[r] -= q[r, j] * along[j, 0]
            moves[r, 0] -= q[r, j] * along[j, 1]
            moves[r, 1] -= q[r, j] * along[j, 2]
        norm += column[r] * column[r]
        dot += column[r] * target[r]
    if norm <= 1e-12 * n:
        for r in range(n):
            jacobian[r, 0] = 0.0
            jacobian[r, 1] = 0.0
        return 0.0
    gain = dot / norm
    for c in range(2):
        move_target = 0.0
        move_column = 0.0
        for r in range(n):
            move_target += moves[r, c] * target[r]
            move_column += moves[r, c] * column[r]
        shift = (move_target - 2.0 * gain * move_column) / norm
        for r in range(n):
            jacobian[r, c] = -(gain * moves[r, c] + column[r] * shift)
    return 0.0
