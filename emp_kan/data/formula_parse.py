"""Read a user's formula string into sympy without running any of it as Python.

``sympy.sympify`` evaluates its input with Python's ``eval``: a formula such as
``__import__('os').system(...)`` runs a shell command. This module parses the string with
:func:`ast.parse` (which builds a syntax tree and executes nothing) and then builds the sympy
expression itself from a whitelist of node kinds:

* numbers (``2``, ``0.5``, ``1e-3``), names (``x``, ``omega``, ``m_1``),
* ``+ - * / **`` (``^`` means ``**``), unary ``-`` and ``+``, parentheses,
* calls with one argument of the functions in :data:`FUNCTIONS`,
* the constants ``pi`` and ``E``.

Anything else (attribute access, subscripts, keywords, strings, lambdas, comparisons, dunder
names, ...) raises ``ValueError`` naming the offending piece.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import sympy as sp

__all__ = ["FUNCTIONS", "CONSTANTS", "MAX_LENGTH", "as_expression", "parse_formula"]

#: The functions a formula may call, each with one argument.
FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "asin": sp.asin,
    "acos": sp.acos,
    "atan": sp.atan,
    "arcsin": sp.asin,
    "arccos": sp.acos,
    "arctan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "asinh": sp.asinh,
    "acosh": sp.acosh,
    "atanh": sp.atanh,
    "arctanh": sp.atanh,
    "exp": sp.exp,
    "log": sp.log,
    "ln": sp.log,
    "sqrt": sp.sqrt,
    "abs": sp.Abs,
    "Abs": sp.Abs,
    "sign": sp.sign,
}

#: Python keywords a formula may use as variable names (``True``, ``False``, ``None`` excepted).
_KEYWORD_NAMES = frozenset(keyword.kwlist) - {"True", "False", "None"}

#: Names that mean a constant rather than a variable.
CONSTANTS: dict[str, Any] = {"pi": sp.pi, "E": sp.E}

#: Longest formula accepted, in characters (a guard against pathological input).
MAX_LENGTH = 1000

# A numeric power larger than this many bits is refused: ``9**9**9`` would make sympy compute
# a number with billions of digits.
_MAX_POWER_BITS = 4096

_OPERATORS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_HELP = "use numbers, names, + - * / ** (or ^), parentheses, pi, E and the functions " + ", ".join(
    sorted(set(FUNCTIONS))
)


def _fail(text: str, node: ast.AST | None, what: str) -> ValueError:
    where = ""
    if node is not None and hasattr(node, "col_offset"):
        end = getattr(node, "end_col_offset", None) or node.col_offset + 1
        where = f" at column {node.col_offset + 1} ({text[node.col_offset : end][:40]!r})"
    return ValueError(f"cannot read the formula: {what}{where}; {_HELP}")


def _power(text: str, node: ast.AST, base: Any, exponent: Any) -> Any:
    if isinstance(base, sp.Number) and isinstance(exponent, sp.Number):
        magnitude = abs(float(base))
        if magnitude not in (0.0, 1.0) and math.isfinite(magnitude):
            bits = abs(math.log2(magnitude)) * abs(float(exponent))
            if not math.isfinite(bits) or bits > _MAX_POWER_BITS:
                raise _fail(text, node, "a number too large to compute")
    return sp.Pow(base, exponent)


def _build(text: str, node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _build(text, node.body)
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(text, node, f"{type(value).__name__} literal is not a number")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _fail(text, node, "a number too large to compute")
            return sp.Float(repr(value))
        return sp.Integer(value)
    if isinstance(node, ast.Name):
        name = node.id
        if name.startswith("_"):
            raise _fail(text, node, f"the name {name!r} (names may not start with '_')")
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            raise _fail(text, node, f"{name} is a function; call it, e.g. {name}(x)")
        return sp.Symbol(name)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _build(text, node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _build(text, node.left), _build(text, node.right)
        if isinstance(node.op, ast.Pow):
            return _power(text, node, left, right)
        if type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](left, right)
        raise _fail(text, node, f"the operator {type(node.op).__name__}")
    if isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name):
            raise _fail(text, func, _not_allowed(func))
        if func.id not in FUNCTIONS:
            raise _fail(text, node, f"unknown function {func.id!r}")
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise _fail(text, node, f"{func.id} takes exactly one argument")
        return FUNCTIONS[func.id](_build(text, node.args[0]))
    raise _fail(text, node, _not_allowed(node))


def _not_allowed(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access",
        ast.Subscript: "subscripts",
        ast.Lambda: "lambda",
        ast.Compare: "comparisons",
        ast.BoolOp: "and/or",
        ast.IfExp: "if/else",
        ast.Call: "calling the result of a call",
    }
    return kinds.get(type(node), f"{type(node).__name__} is not allowed")


def parse_formula(text: str, max_length: int = MAX_LENGTH) -> sp.Expr:
    """The sympy expression written in ``text``, built without evaluating any Python.

    Parameters
    ----------
    text : str
        E.g. ``"x*exp(-y)"``, ``"0.5*k*x^2"``, ``"q/(4*pi*epsilon*r**2)"``. Every name that is
        not a function or constant becomes a :class:`sympy.Symbol`.
    max_length : int
        Longer texts are refused (a saved model's formula may be longer than a typed one).

    Returns
    -------
    sympy.Expr

    Raises
    ------
    ValueError
        For anything outside the grammar above, naming the offending piece.

    Examples
    --------
    >>> parse_formula("x*exp(-y)")
    x*exp(-y)
    >>> parse_formula("0.5*k*x^2")
    0.5*k*x**2
    >>> parse_formula("__import__('os')")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot read the formula: unknown function '__import__' ...
    """
    if not isinstance(text, str):
        raise ValueError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > max_length:
        raise ValueError(f"the formula is {len(text)} characters long; at most {max_length}")
    if not text.strip():
        raise ValueError("the formula is empty; write e.g. x*exp(-y)")
    if "\x00" in text:
        raise ValueError("the formula contains a NUL character")
    # '^' means power, as in sympy's convert_xor; Python would read it as a low-precedence xor.
    text = text.strip().replace("^", "**")
    original = text
    # Python's keywords are fine variable names in a formula (Feynman's lambda): read each under
    # a stand-in name, and give the symbol its own name back.
    stand_ins = {}
    for word in sorted(_KEYWORD_NAMES):
        if re.search(rf"\b{word}\b", text):
            stand_in = f"kw_{word}_"
            while stand_in in text:
                stand_in += "_"
            text = re.sub(rf"\b{word}\b", stand_in, text)
            stand_ins[stand_in] = word
    try:
        with warnings.catch_warnings():  # ast.parse may warn (SyntaxWarning) on odd input
            warnings.simplefilter("ignore")
            tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        msg = getattr(exc, "msg", None) or type(exc).__name__
        raise ValueError(f"cannot read the formula {original[:60]!r}: {msg}; {_HELP}") from None
    try:
        expr = _build(text, tree)
    except RecursionError:
        raise ValueError("the formula is nested too deeply") from None
    except (TypeError, ArithmeticError) as exc:  # e.g. sympy refusing an operation
        raise ValueError(f"cannot read the formula {text[:60]!r}: {exc}") from None
    if not isinstance(expr, sp.Expr):
        raise ValueError(f"the formula {text[:60]!r} is not an expression")
    if stand_ins:
        expr = expr.subs({sp.Symbol(k): sp.Symbol(v) for k, v in stand_ins.items()})
    return expr


def as_expression(value: Any) -> sp.Expr:
    """A sympy expression from a formula string, a sympy object or a plain number.

    Strings go through :func:`parse_formula`, never through ``sympify``; other objects are
    refused, since ``sympify`` would turn them into a string and evaluate it.
    """
    if isinstance(value, str):
        return parse_formula(value)
    if isinstance(value, sp.Basic):
        return value
    if hasattr(value, "dtype") and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()  # a numpy scalar
    if isinstance(value, bool):
        raise TypeError("a formula cannot be a bool")
    # Built directly, never through sympify, which would stringify and eval an odd subclass.
    if isinstance(value, int):
        return sp.Integer(int(value))
    if isinstance(value, float):
        return sp.Float(float(value))
    raise TypeError(f"expected a formula string or a sympy expression, got {type(value).__name__}")
