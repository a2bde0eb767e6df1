"""Functions used as their own Taylor polynomial: a formula whose function barely moves its
argument over the data.

A least-squares fit of ``c*sin(a*S + b)`` to a straight line drives ``a`` to 0 and ``c`` to
infinity: ``0.0165*S/sin(0.00825*S + 0.0041)`` is Michaelis-Menten's ``2*S/(S + 1/2)`` to four
digits, since ``sin`` is linear on the 0.04 rad its argument spans. Such a formula fits, but
it names a function the law does not hold, and with noisy labels it can out-fit the law. A
function whose argument spans less than 0.1 (in its own units: radians for ``sin``, one
e-fold for ``exp``) or, for ``log`` and a fractional power, less than a tenth of its own size
over the rows, is read only through its first terms: the formula is flat there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from emp_kan.data.formula_parse import as_expression
from emp_kan.symbolic.expression import values_at

__all__ = ["flat_functions"]

_SPAN = 0.1
_SHIFT_INVARIANT = (sp.sin, sp.cos, sp.tan, sp.tanh, sp.sinh, sp.cosh, sp.exp)


def _arguments(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Expr, bool]]:
    """Each function that could stand as its own Taylor polynomial, with its argument and
    whether that argument's span counts absolutely (``sin``, ``exp``...) or relative to its
    size (``log``, roots)."""
    found = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, _SHIFT_INVARIANT) and node.args[0].free_symbols:
            found.append((node, node.args[0], False))
        elif isinstance(node, sp.log) and node.args[0].free_symbols:
            found.append((node, node.args[0], True))
        elif (
            node.is_Pow
            and node.base.is_Add
            and node.base.free_symbols
            and node.exp.is_number
            and not node.exp.is_integer
        ):
            found.append((node, node.base, True))
    return found


def flat_functions(expr: Any, variables: Sequence[Any], x: np.ndarray) -> list[str]:
    """The functions of ``expr`` whose argument barely moves over the rows ``x`` ``(n, d)``
    (columns in the order of ``variables``): each as text, empty when there is none.

    An argument ``u`` is flat when ``max(u) - min(u) < 0.1`` for ``sin``, ``cos``, ``tan``,
    ``tanh``, ``sinh``, ``cosh`` and ``exp``, or ``< 0.1 * max|u|`` for ``log`` and a
    fractional power of a sum. Arguments numpy cannot evaluate there are not judged.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        return []
    flat = []
    for function, argument, relative in _arguments(as_expression(expr)):
        values = values_at(argument, variables, x)
        if values is None or not np.all(np.isfinite(values)) or np.any(np.abs(values.imag) > 0):
            continue
        real = values.real
        span = float(real.max() - real.min())
        scale = float(np.abs(real).max()) if relative else 1.0
        if span < _SPAN * scale:
            flat.append(str(function))
    return flat
