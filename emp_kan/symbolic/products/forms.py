"""The functions a product may hold (``f`` in ``C * prod x_i**a_i * f(a*z + b)**c``), their
numpy and sympy forms, and a fit's result (:class:`ProductFit`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emp_kan.symbolic.products.kernels import (
    LOG_FLOOR,
)
from emp_kan.symbolic.registry import companions, library_function

__all__ = [
    "ProductFit",
    "log_abs",
    "monomial",
    "product_functions",
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


def product_functions(library: tuple[str, ...]) -> list[str]:
    """The functions worth a search: ``x`` (whose power ``c`` covers every power and root of
    an affine), the library's non-power functions (``abs``, ``sgn`` and the constant add
    nothing to a power law) and each one's companions in the registry (``exp(x)-1`` and
    ``cosh`` with ``exp``)."""
    out = ["x"]
    for name in library:
        entry = library_function(name)
        if entry.homogeneous is None and name not in ("0", "x", "sgn"):
            out.append(name)
    for name in library:
        out += [c for c in companions(name) if c not in out]
    return out


def log_abs(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.log(np.abs(values))
    return np.where(np.isfinite(out), np.maximum(out, LOG_FLOOR), np.nan)
