"""Every float constant of a formula refitted jointly by least squares on the fit rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from emp_kan.symbolic.expression import lambdify_by_name
from emp_kan.symbolic.levenberg import levenberg_marquardt

__all__ = ["refit_floats"]

_MAX_PARAMETERS = 40


def refit_floats(
    expr: sp.Expr, variables: Sequence[Any], x: np.ndarray, y: np.ndarray, max_nfev: int = 100
) -> sp.Expr:
    """``expr`` with its float constants moved jointly to minimise the squared error of
    ``y (n,)`` on ``x (n, d)`` (Levenberg-Marquardt, exact Jacobian from sympy).

    Returns ``expr`` unchanged when it has no floats, more than 40, or the refit does not
    lower the error.
    """
    floats = sorted(expr.atoms(sp.Float), key=lambda f: (str(f), float(f)))
    if not floats or len(floats) > _MAX_PARAMETERS:
        return expr
    params = [sp.Dummy(f"p{k}") for k in range(len(floats))]
    body = expr.xreplace(dict(zip(floats, params, strict=True)))
    value = lambdify_by_name(body, variables, params)
    gradient = [lambdify_by_name(sp.diff(body, p), variables, params) for p in params]
    columns = [np.asarray(x[:, k], dtype=np.float64) for k in range(x.shape[1])]
    n = len(y)

    def residual_and_jacobian(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(all="ignore"):
            r = np.broadcast_to(np.asarray(value(*columns, *p), dtype=np.float64), (n,)) - y
            jac = np.column_stack(
                [
                    np.broadcast_to(np.asarray(g(*columns, *p), dtype=np.float64), (n,))
                    for g in gradient
                ]
            )
        if not (np.isfinite(r).all() and np.isfinite(jac).all()):
            return np.full(n, 1e150), np.zeros((n, len(p)))
        return r, jac

    start = np.array([float(f) for f in floats])
    r0, _ = residual_and_jacobian(start)
    best = levenberg_marquardt(residual_and_jacobian, start, max_nfev=max_nfev)
    r1, _ = residual_and_jacobian(best)
    if not (math.isfinite(float(r1 @ r1)) and float(r1 @ r1) < float(r0 @ r0)):
        return expr
    return expr.xreplace({f: sp.Float(float(v)) for f, v in zip(floats, best, strict=True)})
