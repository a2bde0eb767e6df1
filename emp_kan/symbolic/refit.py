"""Every float constant of a formula refitted jointly by least squares on the fit rows, and the
standard errors of the refitted constants."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from emp_kan.symbolic.expression import lambdify_by_name, parameter_symbols
from emp_kan.symbolic.levenberg import levenberg_marquardt

__all__ = ["FloatProblem", "floats_by_size", "refit_floats"]

_MAX_PARAMETERS = 40


def floats_by_size(expr: sp.Expr) -> list[sp.Float]:
    """The float constants of ``expr``, largest magnitude first (ties by text, so the order is
    the same in every run): the order of :class:`FloatProblem`'s parameters."""
    return sorted(expr.atoms(sp.Float), key=lambda f: (-abs(float(f)), str(f)))


class FloatProblem:
    """The least-squares problem of a formula's float constants on rows ``x (n, d)``,
    ``y (n,)``: ``floats`` (largest magnitude first) are its parameters, any of which can be
    held at a given value while the others move.

    Parameters
    ----------
    expr : sympy.Expr
    variables : sequence of sympy.Symbol or str
    x : ndarray, ``(n, d)``
    y : ndarray, ``(n,)``
    relative : bool
        Residuals ``log|f| - log|y|`` (relative errors: labels of one sign measured to a
        relative precision over several decades) instead of ``f - y``.

    Raises
    ------
    ValueError
        When a derivative has no closed form (through ``Abs`` or ``sign``, say).
    """

    def __init__(
        self,
        expr: sp.Expr,
        variables: Sequence[Any],
        x: np.ndarray,
        y: np.ndarray,
        relative: bool = False,
    ) -> None:
        self.relative = relative
        self.floats = floats_by_size(expr)
        self.params = parameter_symbols(len(self.floats), variables)
        self.body = expr.xreplace(dict(zip(self.floats, self.params, strict=True)))
        derivatives = [sp.diff(self.body, p) for p in self.params]
        if any(d.has(sp.Derivative, sp.Subs) for d in derivatives):
            raise ValueError(f"no closed-form Jacobian for {expr}")  # e.g. through Abs
        self._value = lambdify_by_name(self.body, variables, self.params)
        self._gradient = [lambdify_by_name(d, variables, self.params) for d in derivatives]
        self._columns = [np.asarray(x[:, k], dtype=np.float64) for k in range(x.shape[1])]
        self.y = np.asarray(y, dtype=np.float64)
        self.start = np.array([float(f) for f in self.floats])

    def _predict(self, columns: Sequence[np.ndarray], p: np.ndarray, n: int) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(self._value(*columns, *p), np.float64), (n,))

    def _residuals(self, f: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``f - y``, or ``log|f| - log|y|`` (NaN where the signs differ) when relative."""
        with np.errstate(all="ignore"):
            if not self.relative:
                return f - y
            return np.where(np.sign(f) == np.sign(y), np.log(np.abs(f)) - np.log(np.abs(y)), np.nan)

    def residual_and_jacobian(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``r (n,)`` and ``J (n, P)`` at ``p``; a huge residual and a zero Jacobian where the
        formula is not finite (the solver then never steps there)."""
        n = len(self.y)
        f = self._predict(self._columns, p, n)
        with np.errstate(all="ignore"):
            jac = np.column_stack(
                [
                    np.broadcast_to(np.asarray(g(*self._columns, *p), dtype=np.float64), (n,))
                    for g in self._gradient
                ]
            )
            if self.relative:
                jac = jac / f[:, None]
        r = self._residuals(f, self.y)
        if not (np.isfinite(r).all() and np.isfinite(jac).all()):
            return np.full(n, 1e150), np.zeros((n, len(p)))
        return r, jac

    def rmse(self, p: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        """The RMSE of the residuals (absolute or relative, as this problem's) on other rows
        ``x (m, d)``, ``y (m,)``; inf where the formula is not finite there."""
        f = self._predict([np.asarray(x[:, k], np.float64) for k in range(x.shape[1])], p, len(y))
        with np.errstate(all="ignore"):
            value = float(np.sqrt(np.mean(self._residuals(f, y) ** 2)))
        return value if math.isfinite(value) else math.inf

    def cost(self, p: np.ndarray) -> float:
        r, _ = self.residual_and_jacobian(p)
        return float(r @ r)

    def solve(
        self, start: np.ndarray, held: Mapping[int, float] | None = None, max_nfev: int = 100
    ) -> np.ndarray:
        """The parameters ``(P,)`` that minimise the squared error from ``start``, those in
        ``held`` (index: value) kept at their values; never worse than ``start``."""
        held = dict(held or {})
        p = np.array(start, dtype=np.float64)
        for k, v in held.items():
            p[k] = v
        free = [k for k in range(len(p)) if k not in held]
        if not free:
            return p

        # The solver works on parameters and residuals near 1: a G of 6.7e-11 in forces of
        # 1e22 otherwise stalls its tolerances (it took no step on Newton's law in SI units).
        size = np.abs(p[free])
        size = np.where(size > 0, size, 1.0)
        spread = 1.0 if self.relative else float(np.std(self.y)) or 1.0

        def restricted(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            full = p.copy()
            full[free] = q * size
            r, jac = self.residual_and_jacobian(full)
            return r / spread, jac[:, free] * size / spread

        p[free] = levenberg_marquardt(restricted, p[free] / size, max_nfev=max_nfev) * size
        return p

    def standard_errors(self, p: np.ndarray, held: Sequence[int] = ()) -> np.ndarray:
        """Standard errors ``(P,)`` of the parameters at the least-squares solution ``p``:
        ``sqrt(diag(s^2 (J^T J)^+))`` over the free ones, ``s^2`` the residual variance with
        one degree of freedom per free parameter; 0 for ``held`` ones, inf where the rows do
        not determine a parameter."""
        free = [k for k in range(len(p)) if k not in set(held)]
        out = np.zeros(len(p))
        r, jac = self.residual_and_jacobian(p)
        dof = len(r) - len(free)
        if not free:
            return out
        if dof <= 0 or not np.isfinite(r).all() or float(np.abs(r).max()) >= 1e149:
            out[free] = math.inf
            return out
        j = jac[:, free]
        s2 = float(r @ r) / dof
        # Columns scaled to unit length first: G near 1e-11 beside an exponent near 1 puts
        # the normal matrix's eigenvalues 1e18 apart, and the cut-off would drop one.
        # A column whose length overflows (a derivative near 1e160) gets no error bar, and
        # its constant is left as fitted.
        with np.errstate(over="ignore"):
            norms = np.linalg.norm(j, axis=0)
        determined = norms > 0
        scale = np.where(determined, 1.0 / np.where(determined, norms, 1.0), 0.0)
        scaled = j * scale
        try:
            inverse = np.linalg.pinv(scaled.T @ scaled, rcond=1e-12, hermitian=True)
        except np.linalg.LinAlgError:
            out[free] = math.inf
            return out
        variances = s2 * np.diag(inverse) * scale**2
        out[free] = np.where(determined & (variances > 0), np.sqrt(np.abs(variances)), math.inf)
        return out

    def expression(self, p: np.ndarray, exact: Mapping[int, sp.Expr] | None = None) -> sp.Expr:
        """The formula with parameter ``k`` at ``exact[k]`` (a sympy number) or ``p[k]``."""
        exact = exact or {}
        values = {
            param: exact.get(k, sp.Float(float(v)))
            for k, (param, v) in enumerate(zip(self.params, p, strict=True))
        }
        return self.body.xreplace(values)


def refit_floats(
    expr: sp.Expr,
    variables: Sequence[Any],
    x: np.ndarray,
    y: np.ndarray,
    max_nfev: int = 100,
    relative: bool = False,
) -> sp.Expr:
    """``expr`` with its float constants moved jointly to minimise the squared error of
    ``y (n,)`` on ``x (n, d)`` (Levenberg-Marquardt, exact Jacobian from sympy); with
    ``relative``, of ``log|y|`` (labels of one sign over several decades).

    Returns ``expr`` unchanged when it has no floats, more than 40, or the refit does not
    lower the error.
    """
    floats = expr.atoms(sp.Float)
    if not floats or len(floats) > _MAX_PARAMETERS:
        return expr
    try:
        problem = FloatProblem(expr, variables, x, y, relative=relative)
    except ValueError:
        return expr
    best = problem.solve(problem.start, max_nfev=max_nfev)
    before, after = problem.cost(problem.start), problem.cost(best)
    if not (math.isfinite(after) and after < before):
        return expr
    return problem.expression(best)
