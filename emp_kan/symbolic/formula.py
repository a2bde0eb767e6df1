"""The symbolic stage's results: a formula with its test metrics, per-edge fits and
warnings (:class:`SymbolicFormula`), and the fit chosen for one edge (:class:`EdgeFit`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import sympy as sp

from emp_kan._runtime.numbers import finite_or_none
from emp_kan.symbolic.edge_fit import EdgeCandidate
from emp_kan.symbolic.registry import library_function

log = logging.getLogger("emp_kan")

__all__ = [
    "UNDEFINED_WARNING",
    "EdgeFit",
    "SymbolicFormula",
    "is_expression_warning",
    "trust_warnings",
    "with_trust_warnings",
    "unexplained_warning",
]


@dataclass
class EdgeFit:
    """The symbolic function chosen for one edge (ids of the original, unpruned model)."""

    layer: int
    out_id: int
    in_id: int
    function: str
    r2: float  # held-out R^2 of the fit to the spline, when it was chosen
    candidates: list[EdgeCandidate]
    note: str = ""

    def latex(self, variable: str = "x") -> str:
        """The edge's function of ``variable`` (its input's name) in LaTeX."""
        x = sp.Symbol(variable)
        return sp.latex(library_function(self.function).sympy(x)) if self.function != "0" else "0"


UNDEFINED_WARNING = (
    "the formula is undefined at some points inside the range of the training inputs "
    "(a sqrt, log or 1/x of a negative or zero argument); check it before using it there"
)


_UNEXPLAINED = "the formula explains less than predicting the mean"


def unexplained_warning(test_r2: float) -> str:
    """The warning on a formula whose test R^2 is not above 0."""
    return (
        f"{_UNEXPLAINED} (test R^2 = {test_r2:.3g}); do not use it as a result: train "
        "longer, prune less, or widen the library"
    )


_POOR_FIT = "the formula explains only"
_BELOW_NETWORK = "the formula's test error is"
# Below this test R^2 a formula is not read as the law of the data.
TRUSTED_R2 = 0.95


def trust_warnings(formula: SymbolicFormula) -> list[str]:
    """What a reader must know before trusting the chosen ``formula``: a test R^2 below
    :data:`TRUSTED_R2` (and above 0, where :func:`unexplained_warning` speaks), or a test error
    more than 10 times the pruned network's (the network holds more than the formula says)."""
    out = []
    r2, rmse, spline = formula.test_r2, formula.test_rmse, formula.spline_test_rmse
    if math.isfinite(r2) and 0.0 < r2 < TRUSTED_R2:
        out.append(
            f"{_POOR_FIT} R^2 = {r2:.3g} of the test labels' variance (below {TRUSTED_R2}): "
            "it is not the law of these data; look at the network's picture, add inputs, or "
            "widen the library"
        )
    if math.isfinite(rmse) and math.isfinite(spline) and spline > 0 and rmse > 10 * spline:
        out.append(
            f"{_BELOW_NETWORK} {rmse / spline:.3g}x the pruned network's: the network fits "
            "the data much better than this formula reads it"
        )
    return out


def is_expression_warning(warning: str, domain: bool = True) -> bool:
    """Whether ``warning`` is about one expression's fit (or, with ``domain``, its domain), not
    about how the symbolic stage ran: a formula rewritten into another expression drops it."""
    return (domain and warning == UNDEFINED_WARNING) or warning.startswith(
        (_UNEXPLAINED, _POOR_FIT, _BELOW_NETWORK)
    )


@dataclass
class SymbolicFormula:
    """A formula found in a KAN, checked end to end.

    Attributes
    ----------
    expression : sympy.Expr
        In the variables ``variables`` (one output).
    variables : list of sympy.Symbol
    test_rmse, test_r2 : float
        Of the formula on the held-out test data.
    spline_test_rmse : float
        Of the (pruned) spline model before the symbolic stage, for comparison.
    complexity : int
        Number of nodes in the expression tree (sympy ``count_ops(visual=False)`` + symbols).
    edges : list of EdgeFit
    explains_data : bool
        False when the formula does worse than predicting the mean (test R^2 <= 0).
    """

    expression: Any
    variables: list[Any]
    test_rmse: float
    test_r2: float
    train_rmse: float
    spline_test_rmse: float
    complexity: int
    edges: list[EdgeFit]
    explains_data: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return str(self.expression)

    def sympy(self) -> Any:
        """The sympy expression."""
        return self.expression

    def latex(self) -> str:
        """LaTeX of the expression."""
        return sp.latex(self.expression)

    def lambdify(self):
        """A numpy function ``f(X) -> (n,)`` for ``X`` of shape ``(n, len(variables))``."""
        fn = sp.lambdify(self.variables, self.expression, "numpy")

        def evaluate(x: Any) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != len(self.variables):
                raise ValueError(
                    f"expected inputs of shape (n, {len(self.variables)}), got {x.shape}"
                )
            with np.errstate(all="ignore"):
                out = fn(*x.T)
            return np.broadcast_to(np.asarray(out, dtype=np.float64), (x.shape[0],)).copy()

        return evaluate

    def graph_attributes(
        self, input_names: Sequence[str] | None = None
    ) -> dict[tuple[int, int, int], dict[str, Any]]:
        """``{(layer, out_id, in_id): {"function", "latex", "r2"}}`` for :func:`to_networkx`.

        Edges out of the inputs are written in the input's name (``input_names``, default the
        formula's variables: ``sin(mass)``; names longer than 6 characters as ``x``); deeper
        edges in ``h``, a hidden node's value.
        """
        names = [str(v) for v in self.variables] if input_names is None else list(input_names)
        # Long names make labels that overlap their neighbours': those edges say x.
        names = [n if len(n) <= 6 and n.isidentifier() else "x" for n in names]
        return {
            (e.layer, e.out_id, e.in_id): {
                "function": e.function,
                "latex": e.latex(names[e.in_id] if e.layer == 0 else "h"),
                "r2": float(e.r2),
            }
            for e in self.edges
        }

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "formula": str(self.expression),
            "latex": self.latex(),
            "variables": [str(v) for v in self.variables],
            "test_rmse": finite_or_none(self.test_rmse),
            "test_r2": finite_or_none(self.test_r2),
            "train_rmse": finite_or_none(self.train_rmse),
            "spline_test_rmse": finite_or_none(self.spline_test_rmse),
            "complexity": self.complexity,
            "explains_data": self.explains_data,
            "seconds": self.seconds,
            "edges": [
                {
                    "layer": e.layer,
                    "out": e.out_id,
                    "in": e.in_id,
                    "function": e.function,
                    "r2": finite_or_none(e.r2),
                    "note": e.note,
                }
                for e in self.edges
            ],
            "warnings": self.warnings,
        }


def with_trust_warnings(formula: SymbolicFormula, logged: Sequence[str] = ()) -> SymbolicFormula:
    """``formula`` with its :func:`trust_warnings` first among its warnings (replacing any it
    carried from before a rewrite), each logged unless one of its kind is among ``logged`` (the
    same formula measured again must not warn twice)."""
    trust = trust_warnings(formula)
    # measured again in the data's units, the same formula's R^2 can differ in its last digit
    kinds = {kind for kind in (_POOR_FIT, _BELOW_NETWORK) for w in logged if w.startswith(kind)}
    for warning in trust:
        if not warning.startswith(tuple(kinds)):
            log.warning(warning)
    rest = [w for w in formula.warnings if not w.startswith((_POOR_FIT, _BELOW_NETWORK))]
    return replace(formula, warnings=trust + rest)
