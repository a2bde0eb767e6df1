"""The one table of functions the symbolic stage may put on an edge.

Every part of the symbolic stage reads this registry: the edge fit (numpy values and exact
derivatives for its least squares), the formula's terms (their sympy form and how a scale moves
out of them), the search (complexity, which functions are defined on every real input, and
which of two equally complex ones to prefer), the product search (its compiled kernel's code,
its symmetry, and the forms it tries beside ``exp``) and the pykan model the stage fixes edges
on (a torch form). Each entry is a :class:`LibraryFunction`; a name is what ``--library`` and
``library=`` take, except a companion's (``exp(x)-1`` and ``cosh``: forms the product search
tries where the library holds ``exp``).

The built-in entries carry hand-written numpy forms (``u * u`` is faster than ``u ** 2``) and
use pykan's own torch forms (which avoid its singularities). A user adds a function with
:func:`register_function`, from its sympy form in ``x``; numpy, derivative and torch forms are
derived from it by :func:`sympy.lambdify`::

    import emp_kan
    emp_kan.register_function("hypot1", "sqrt(x**2 + 1)", complexity=3, total=True)
    emp_kan.EMPKANRegressor(library=(*emp_kan.DEFAULT_LIBRARY, "hypot1"))

A formula string is read by :func:`emp_kan.data.formula_parse.parse_formula`, which evaluates no
Python. Registration lasts for the process (Dask workers of ``emp-kan bench`` run the built-ins
only).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from emp_kan.data.formula_parse import as_expression

__all__ = [
    "LibraryFunction",
    "companions",
    "library_function",
    "library_names",
    "register_function",
    "unregister_function",
]

_X = sp.Symbol("x")


@dataclass(frozen=True)
class LibraryFunction:
    """One function ``f`` an edge may carry as ``c * f(a * x + b) + d``.

    Attributes
    ----------
    name : str
    sympy : callable
        ``u -> f(u)`` on sympy expressions.
    numpy, derivative : callable
        ``f(u)`` and ``f'(u)`` on numpy arrays of any shape.
    complexity : int
        What a reader must follow in ``f(a x + b)``; the edge fit charges 10**0.25 of error
        per unit, the formula's complexity counts sympy's nodes instead.
    total : bool
        Defined and finite for every real input: safe when inputs drift out of the data range.
    homogeneous : float or None
        ``p`` when ``f(a u) = |a|**p f(sign(a) u)`` (power-like), so that a scale moves out.
    torch : callable or None
        ``u -> f(u)`` on torch tensors; None for built-ins, whose pykan entry of the same name
        is used.
    rank : int
        Among functions of equal complexity, the lower rank is the simpler: algebraic before
        transcendental (the simplicity pass swaps a ``cos`` for an ``x^2`` that fits as well).
    kernel : int or None
        The function's code in the product search's compiled loop (the branches of
        :mod:`emp_kan.symbolic.products.kernels`); None: the numpy path.
    mirrored : bool
        ``|f(-u)| = |f(u)|`` bitwise in numpy, so ``(a, b)`` and ``(-a, -b)`` give the product
        search one column.
    companion_of : str or None
        Not a library name of its own: a form the product search tries where the library
        holds this function (``exp(x) - 1``, the Bose-Einstein and Planck denominator, and the
        ``cosh`` of two-state systems, with ``exp``).
    """

    name: str
    sympy: Callable[[Any], Any]
    numpy: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]
    complexity: int
    total: bool = False
    homogeneous: float | None = None
    torch: Callable[[Any], Any] | None = None
    rank: int = 99
    kernel: int | None = None
    mirrored: bool = False
    companion_of: str | None = None

    @property
    def builtin(self) -> bool:
        return self.torch is None


def _builtin(
    name,
    sympy_form,
    numpy_form,
    derivative,
    complexity,
    total=False,
    homogeneous=None,
    *,
    rank=99,
    kernel=None,
    mirrored=False,
    companion_of=None,
):
    return LibraryFunction(
        name,
        sympy_form,
        numpy_form,
        derivative,
        complexity,
        total,
        homogeneous,
        rank=rank,
        kernel=kernel,
        mirrored=mirrored,
        companion_of=companion_of,
    )


# name, sympy, numpy, derivative, complexity, total, homogeneous; then rank (algebraic before
# transcendental at equal complexity), the product search's kernel code, whether |f| is even.
# Complexity of sin and cos: 2. (Counting them 3, like tan and tanh, made the default discover
# exact on eq. 37 but turned eq. 1's accurate cos(tanh) composition into a parabola with 150x
# the test RMSE on the 30-equation bench; see docs/benchmarks.md.)
# fmt: off
_BUILTINS = [
    _builtin("0", lambda u: sp.Integer(0), np.zeros_like, np.zeros_like, 0, True),
    _builtin("x", lambda u: u, lambda u: u, np.ones_like, 1, True, rank=0, kernel=0),
    _builtin("x^2", lambda u: u**2, lambda u: u * u, lambda u: 2.0 * u, 2, True, 2, rank=1),
    _builtin("x^3", lambda u: u**3, lambda u: u * u * u, lambda u: 3.0 * (u * u), 3, True, 3,
             rank=2),
    _builtin("x^4", lambda u: u**4, lambda u: (u * u) * (u * u), lambda u: 4.0 * (u * u * u), 4,
             True, 4, rank=3),
    _builtin("x^5", lambda u: u**5, lambda u: (u * u) * (u * u) * u,
             lambda u: 5.0 * ((u * u) * (u * u)), 5, True, 5),
    _builtin("1/x", lambda u: 1 / u, lambda u: 1.0 / u, lambda u: -1.0 / (u * u), 2, False, -1,
             rank=4),
    _builtin("1/x^2", lambda u: u**-2, lambda u: 1.0 / (u * u), lambda u: -2.0 / (u * u * u), 3,
             False, -2, rank=5),
    _builtin("1/x^3", lambda u: u**-3, lambda u: 1.0 / (u * u * u),
             lambda u: -3.0 / ((u * u) * (u * u)), 4, False, -3),
    _builtin("1/x^4", lambda u: u**-4, lambda u: 1.0 / ((u * u) * (u * u)),
             lambda u: -4.0 / ((u * u) * (u * u) * u), 5, False, -4),
    _builtin("1/x^5", lambda u: u**-5, lambda u: 1.0 / ((u * u) * (u * u) * u),
             lambda u: -5.0 / ((u * u * u) * (u * u * u)), 6, False, -5),
    _builtin("sqrt", sp.sqrt, np.sqrt, lambda u: 0.5 / np.sqrt(u), 2, False, 0.5, rank=6),
    _builtin("x^0.5", sp.sqrt, np.sqrt, lambda u: 0.5 / np.sqrt(u), 2, False, 0.5),
    _builtin("x^1.5", lambda u: u ** sp.Rational(3, 2), lambda u: np.sqrt(u) ** 3,
             lambda u: 1.5 * np.sqrt(u), 3, False, 1.5),
    _builtin("1/sqrt(x)", lambda u: 1 / sp.sqrt(u), lambda u: 1.0 / np.sqrt(u),
             lambda u: -0.5 / np.sqrt(u) ** 3, 3, False, -0.5),
    _builtin("1/x^0.5", lambda u: 1 / sp.sqrt(u), lambda u: 1.0 / np.sqrt(u),
             lambda u: -0.5 / np.sqrt(u) ** 3, 3, False, -0.5),
    _builtin("exp", sp.exp, np.exp, np.exp, 2, True, rank=8, kernel=1),
    _builtin("log", sp.log, np.log, lambda u: 1.0 / u, 2, rank=9, kernel=2),
    _builtin("sin", sp.sin, np.sin, np.cos, 2, True, rank=10, kernel=3, mirrored=True),
    _builtin("cos", sp.cos, np.cos, lambda u: -np.sin(u), 2, True, rank=11, kernel=4,
             mirrored=True),
    _builtin("tan", sp.tan, np.tan, lambda u: 1.0 / np.cos(u) ** 2, 3, rank=13, kernel=5,
             mirrored=True),
    _builtin("tanh", sp.tanh, np.tanh, lambda u: 1.0 - np.tanh(u) ** 2, 3, True, rank=12,
             kernel=6, mirrored=True),
    _builtin("abs", sp.Abs, np.abs, np.sign, 2, True, 1, rank=7),
    _builtin("sgn", sp.sign, np.sign, np.zeros_like, 3, True),
    _builtin("arcsin", sp.asin, np.arcsin, lambda u: 1.0 / np.sqrt(1.0 - u**2), 3, kernel=7,
             mirrored=True),
    _builtin("arccos", sp.acos, np.arccos, lambda u: -1.0 / np.sqrt(1.0 - u**2), 3, kernel=8),
    _builtin("arctan", sp.atan, np.arctan, lambda u: 1.0 / (1.0 + u**2), 3, True, kernel=9,
             mirrored=True),
    _builtin("arctanh", sp.atanh, np.arctanh, lambda u: 1.0 / (1.0 - u**2), 3, kernel=10,
             mirrored=True),
    _builtin("gaussian", lambda u: sp.exp(-(u**2)), lambda u: np.exp(-(u * u)),
             lambda u: -2.0 * u * np.exp(-(u**2)), 3, True, kernel=11, mirrored=True),
    _builtin("exp(x)-1", lambda u: sp.exp(u) - 1, np.expm1, np.exp, 3, True, kernel=12,
             companion_of="exp"),
    _builtin("cosh", sp.cosh, np.cosh, np.sinh, 3, True, kernel=13, mirrored=True,
             companion_of="exp"),
]
# fmt: on

_REGISTRY: dict[str, LibraryFunction] = {f.name: f for f in _BUILTINS}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def library_names() -> tuple[str, ...]:
    """Every registered name, built-ins first (companions are no names of their own)."""
    return tuple(name for name, entry in _REGISTRY.items() if entry.companion_of is None)


def companions(name: str) -> tuple[str, ...]:
    """The forms the product search tries where the library holds ``name``."""
    return tuple(n for n, entry in _REGISTRY.items() if entry.companion_of == name)


def library_function(name: str) -> LibraryFunction:
    """The entry ``name``; ValueError names the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown library function {name!r}; valid names: {', '.join(sorted(library_names()))}"
        ) from None


def register_function(
    name: str,
    formula: str | sp.Expr,
    complexity: int,
    *,
    total: bool = False,
    replace: bool = False,
) -> LibraryFunction:
    """Add ``f(x) = formula`` to the library under ``name``.

    Parameters
    ----------
    name : str
        A Python-style identifier (letters, digits, ``_``) that is not a built-in name.
    formula : str or sympy.Expr
        ``f`` in the one variable ``x``, e.g. ``"sqrt(x**2 + 1)"`` (read by ``parse_formula``:
        nothing is evaluated).
    complexity : int
        >= 1; compare the built-ins: ``x`` 1, ``x^2`` / ``exp`` / ``sin`` 2, ``tanh`` 3.
    total : bool
        Whether ``f`` is defined and finite on every real input (say True only if it is: such
        functions are kept when a refit drives inputs out of the data's range).
    replace : bool
        Replace an earlier registration of ``name`` (never a built-in).

    Returns
    -------
    LibraryFunction

    Raises
    ------
    ValueError
        For a bad name or complexity, a formula in anything but ``x``, or a name taken.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"a library name is letters, digits and _, not starting with a digit; got {name!r}"
        )
    if name in _REGISTRY and (_REGISTRY[name].builtin or not replace):
        kind = "a built-in" if _REGISTRY[name].builtin else "already registered (replace=True)"
        raise ValueError(f"library function {name!r} is {kind}; choose another name")
    if isinstance(complexity, bool) or not isinstance(complexity, int) or complexity < 1:
        raise ValueError(f"complexity must be a whole number >= 1, got {complexity!r}")
    try:  # never sympify: it would turn an odd object into a string and evaluate it
        expr = as_expression(formula)
    except TypeError as exc:
        raise ValueError(
            f"the formula must be a string or a sympy expression in x; {exc}"
        ) from None
    if not isinstance(expr, sp.Expr) or expr.free_symbols != {_X}:
        raise ValueError(
            f"the formula must be a function of x alone, e.g. 'sqrt(x**2 + 1)'; got {formula!r}"
        )
    entry = LibraryFunction(
        name=name,
        sympy=lambda u, expr=expr: expr.subs(_X, u),
        numpy=sp.lambdify(_X, expr, modules="numpy"),
        derivative=_numpy_derivative(expr),
        complexity=complexity,
        total=bool(total),
        torch=sp.lambdify(_X, expr, modules="torch"),
    )
    _REGISTRY[name] = entry
    return entry


def _numpy_derivative(expr: sp.Expr) -> Callable[[np.ndarray], np.ndarray]:
    slope = sp.lambdify(_X, sp.diff(expr, _X), modules="numpy")
    # A constant derivative lambdifies to a scalar; the fit needs an array of the input's shape.
    return lambda u: np.broadcast_to(slope(u), np.shape(u)).astype(float)


def unregister_function(name: str) -> None:
    """Remove a function added by :func:`register_function` (built-ins stay)."""
    entry = library_function(name)
    if entry.builtin:
        raise ValueError(f"{name!r} is a built-in library function and cannot be removed")
    del _REGISTRY[name]
