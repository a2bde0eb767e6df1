"""A log-space product fit as a formula of ``y``: a sign model from the inputs' signs, the
constants polished on ``y`` itself, exponents snapped to halves and thirds, and the sympy
expression."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sympy as sp

from emp_kan.symbolic.products.forms import ProductFit
from emp_kan.symbolic.registry import library_function
from emp_kan.symbolic.transform import LogTransform, _sign_model

__all__ = ["SignedProduct", "polish_in_y", "product_expression", "signed_product", "snap_powers"]


_INTEGER_POWER = 0.1  # c within this of a whole number is taken as that number


_SIGN_AGREEMENT = 0.95  # share of fit rows whose sign the sign model must explain


_SNAP_DISTANCE = 0.05  # an exponent this close to a half or a third is tried there


@dataclass(frozen=True)
class SignedProduct:
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

    def with_params(self, params: np.ndarray) -> SignedProduct:
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
            factor = library_function(fit.function).numpy(fit.a * fit.argument_values(x) + fit.b)
            sign = self.s0 * np.prod(
                np.where(np.array(self.parity, dtype=bool), np.sign(x), 1.0), axis=1
            )
            return sign * np.exp(log_part) * factor**fit.c


def signed_product(fit: ProductFit, x: np.ndarray, y: np.ndarray) -> SignedProduct | None:
    """``fit`` with a whole power where ``c`` is near one and a sign model of ``y`` from the
    rows ``x (n, d)``, ``y (n,)``; None when no sign model explains the sign of ``y``."""
    if fit.function == "exp":  # exp(a z + b)**c is exp(c*a z + c*b): one exponential
        fit = replace(fit, a=fit.a * fit.c, b=fit.b * fit.c, c=1.0)
    c = float(round(fit.c)) if abs(fit.c - round(fit.c)) < _INTEGER_POWER else fit.c
    if c == 0:
        return None
    fit = replace(fit, c=c)
    with np.errstate(all="ignore"):
        inner = library_function(fit.function).numpy(fit.a * fit.argument_values(x) + fit.b)
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
    return SignedProduct(fit, s0, tuple(parity), input_signs, fractional)


def polish_in_y(
    signed: SignedProduct, x: np.ndarray, y: np.ndarray, fixed: frozenset[int] = frozenset()
) -> tuple[SignedProduct, float]:
    """The parameters (but those at the positions ``fixed`` of :meth:`SignedProduct.params`)
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


def snap_powers(
    signed: SignedProduct, x: np.ndarray, y: np.ndarray, rmse: float
) -> tuple[SignedProduct, float]:
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
        trial, trial_rmse = polish_in_y(signed.with_params(params), x, y, frozenset(fixed | {k}))
        if trial_rmse <= max(1.5 * rmse, rmse + 1e-7 * spread):
            signed, rmse = trial, trial_rmse
            fixed.add(k)
    return signed, rmse


def product_expression(signed: SignedProduct, symbols: list[Any]) -> Any:
    """The sympy formula of ``y`` for a signed fit, in ``symbols``."""
    fit = signed.fit
    transform = LogTransform(signed.input_signs, signed.s0, signed.parity)
    log_expr = sum(
        (sp.Float(e) * symbols[i] for i, e in fit.exponents.items()), sp.Float(fit.log_scale)
    )
    power = sp.Float(fit.c) if signed.fractional_power else sp.Integer(int(fit.c))
    argument = sp.Mul(*(symbols[k] ** p for k, p in fit.argument))
    factor = library_function(fit.function).sympy(sp.Float(fit.a) * argument + sp.Float(fit.b))
    return transform.to_original(log_expr, symbols) * factor**power
