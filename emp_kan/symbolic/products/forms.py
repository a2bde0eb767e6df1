"""The functions a product may hold (``f`` in ``C * prod x_i**a_i * f(a*z + b)**c``), their
numpy and sympy forms, and a fit's result (:class:`ProductFit`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from emp_kan.symbolic.products.kernels import (
    LOG_FLOOR,
)
from emp_kan.symbolic.registry import library_function

__all__ = [
    "MIRRORED",
    "ProductFit",
    "log_abs",
    "monomial",
    "numpy_form",
    "product_functions",
    "sympy_form",
]


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
        return monomial(x, self.argument)


def monomial(x: np.ndarray, argument: tuple[tuple[int, int], ...]) -> np.ndarray:
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
MIRRORED = frozenset(
    {"sin", "cos", "tan", "tanh", "arcsin", "arctan", "arctanh", "gaussian", "cosh"}
)


def product_functions(library: tuple[str, ...]) -> list[str]:
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


def numpy_form(function: str):
    return (
        _EXP_FAMILY[function][0] if function in _EXP_FAMILY else (library_function(function).numpy)
    )


def sympy_form(function: str):
    return (
        _EXP_FAMILY[function][1] if function in _EXP_FAMILY else (library_function(function).sympy)
    )


def log_abs(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.log(np.abs(values))
    return np.where(np.isfinite(out), np.maximum(out, LOG_FLOOR), np.nan)
