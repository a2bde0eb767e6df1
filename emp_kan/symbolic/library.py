"""The default function library of the symbolic stage, by name: importable without sympy or
torch, so that reading the defaults (``emp-kan --help``) stays fast."""

from __future__ import annotations

__all__ = ["DEFAULT_LIBRARY"]

DEFAULT_LIBRARY = (
    "x",
    "x^2",
    "x^3",
    "x^4",
    "1/x",
    "1/x^2",
    "sqrt",
    "exp",
    "log",
    "sin",
    "cos",
    "tanh",
    "abs",
    "0",
)
