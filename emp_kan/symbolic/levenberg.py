"""Levenberg-Marquardt for the formula refits: small, dense, deterministic.

The refits of :mod:`emp_kan.symbolic.formula_terms` have a few to a few dozen parameters and
hundreds of rows, with an exact Jacobian. scipy's ``trf`` spends most of each iteration on an SVD
of the ``(n, P)`` Jacobian and its own bookkeeping; MINPACK's ``lm`` rounds with the memory
alignment of its work arrays (one model gave different formulas from call to call). Here an
iteration is the residual and Jacobian, ``J^T J`` and ``J^T r`` (``(P, P)``, ``(P,)``) and one
``P x P`` solve, with Marquardt's scaling by ``diag(J^T J)`` and Nielsen's damping update.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["levenberg_marquardt"]

ResidualAndJacobian = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``p (P,) -> (residual (n,), jacobian (n, P))``."""


def levenberg_marquardt(
    residual_and_jacobian: ResidualAndJacobian,
    start: np.ndarray,
    max_nfev: int,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    gtol: float = 1e-8,
    max_rejections: int = 12,
) -> np.ndarray:
    """Minimise ``sum(residual(p)**2)`` from ``start`` ``(P,)``; returns the best ``p`` seen.

    Parameters
    ----------
    residual_and_jacobian
        ``p -> (r (n,), J (n, P))``, both finite.
    start : ndarray, ``(P,)``
    max_nfev : int
        Evaluations at most (the start included).
    ftol, xtol, gtol : float
        Stop when an accepted step lowers the cost by less than ``ftol`` of it and the
        undamped (Gauss-Newton) step would too, when that undamped step is shorter than
        ``xtol`` of ``|p|``, or when the gradient's largest entry is below ``gtol`` (scipy's
        ``least_squares`` defaults). The tests read the undamped step because a damped one is
        short and gains little whenever the damping is high, as it is at the start of a badly
        scaled refit (a ``C`` of 1e5 beside an ``a`` of 1): tested on the damped step, the
        solver stopped at or near the start, and ended worse than scipy's ``trf`` on 61 of the
        90 refits of a default discovery.
    max_rejections : int
        Stop after this many rejected steps in a row (the damping then grows without bound).

    Returns
    -------
    ndarray, ``(P,)``
        Never worse than ``start``: a rejected step is not taken.
    """
    # Residuals near 1e154 overflow their squares and products: such a start stops the
    # solver and such a step is rejected, by the finiteness tests below, not with a warning.
    with np.errstate(over="ignore", invalid="ignore"):
        return _solve(residual_and_jacobian, start, max_nfev, ftol, xtol, gtol, max_rejections)


def _solve(
    residual_and_jacobian: ResidualAndJacobian,
    start: np.ndarray,
    max_nfev: int,
    ftol: float,
    xtol: float,
    gtol: float,
    max_rejections: int,
) -> np.ndarray:
    p = np.array(start, dtype=np.float64)
    r, jac = residual_and_jacobian(p)
    cost = float(r @ r)
    normal = jac.T @ jac
    gradient = jac.T @ r
    damping = 1e-3 * float(np.max(np.diag(normal), initial=0.0))
    growth = 2.0
    rejections = 0
    evaluations = 1
    while evaluations < max_nfev and rejections < max_rejections:
        if not np.max(np.abs(gradient), initial=0.0) > gtol:
            break
        step, scale = _damped_step(normal, gradient, damping)
        accepted = False
        if np.all(np.isfinite(step)):
            trial = p + step
            r_trial, jac_trial = residual_and_jacobian(trial)
            evaluations += 1
            cost_trial = float(r_trial @ r_trial)  # an overflowing trial is rejected
            predicted = float(step @ (damping * scale * step - gradient))
            accepted = bool(np.isfinite(cost_trial) and cost_trial < cost and predicted > 0)
        if not accepted:  # no step, or a step that does not lower the cost: damp harder
            damping = damping * growth if damping > 0 else 1e-12
            growth *= 2.0
            rejections += 1
            continue
        ratio = (cost - cost_trial) / predicted
        # The undamped step from the point left: what a step could gain there, and how far.
        newton = np.linalg.lstsq(normal, -gradient, rcond=None)[0]
        flat = cost - cost_trial <= ftol * cost and float(-gradient @ newton) <= ftol * cost
        still = float(np.linalg.norm(newton)) <= xtol * (float(np.linalg.norm(p)) + xtol)
        p, r, jac, cost = trial, r_trial, jac_trial, cost_trial
        normal = jac.T @ jac
        gradient = jac.T @ r
        damping *= max(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3)
        growth = 2.0
        rejections = 0
        if flat or still:
            break
    return p


def _damped_step(
    normal: np.ndarray, gradient: np.ndarray, damping: float
) -> tuple[np.ndarray, np.ndarray]:
    """The step solving ``(J^T J + damping * diag(scale)) step = -J^T r`` (NaN where that
    system is singular) and the ``scale (P,)``: the diagonal of ``J^T J``, kept above a tiny
    share of its largest entry so that a parameter the residual ignores still gets damped."""
    diagonal = np.diag(normal)
    scale = np.maximum(diagonal, 1e-12 * max(float(np.max(diagonal)), 1e-300))
    try:
        step = np.linalg.solve(normal + damping * np.diag(scale), -gradient)
    except np.linalg.LinAlgError:
        step = np.full_like(gradient, np.nan)
    return step, scale
