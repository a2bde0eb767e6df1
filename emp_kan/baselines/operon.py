"""A genetic-programming baseline: pyoperon's scikit-learn regressor on the same rows.

Scientists who do not use a KAN would reach for a symbolic-regression package; Operon is the
fastest of the SRBench methods that installs offline here. It is an optional dependency
(``pip install 'emp-kan[sr]'``): :func:`require_operon` fails with that instruction before any
work starts.

The budget (:data:`OPERON_BUDGET`) is the one issue 13 measured Operon with: population 1000,
1000 generations, expression length at most 30, one thread (the bench runs one single-threaded
worker per core), and a two-minute cap per fit. The function set is arithmetic plus ``sin``,
``cos``, ``exp``, ``log``, ``sqrt`` and ``square``, which covers the Feynman laws.

Operon fits on the same fit rows as the KANs (the training rows minus the validation rows the
pipeline decides on), is scored on the same test rows, and its formula goes through the same
exactness check, after its expression tree is multiplied out and passed through the symbolic
stage's bounded rewrites (Operon writes ``x*y`` as ``31.17*((-1.79*x)*(-0.0179*y)) + ...``;
SRBench also simplifies before checking; sympy's own ``simplify`` hung on one expression). No
constant is snapped: that would lend Operon part of our symbolic stage.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from emp_kan._runtime.numbers import finite_or_none
from emp_kan.data.formula_parse import parse_formula
from emp_kan.data.problems import Problem
from emp_kan.data.split import Split
from emp_kan.symbolic.expression import (
    evaluate_formula,
    expansion_risk,
    formula_complexity,
    simplify_expression,
)
from emp_kan.symbolic.recovery import is_exact_recovery

log = logging.getLogger("emp_kan")

__all__ = [
    "INSTALL_HINT",
    "OPERON_BUDGET",
    "OperonRun",
    "operon_available",
    "require_operon",
    "run_operon",
]

INSTALL_HINT = "pyoperon is not installed; install it with: pip install 'emp-kan[sr]'"

#: pyoperon ``SymbolicRegressor`` settings of every run (``random_state`` is the task's seed).
OPERON_BUDGET: dict[str, Any] = {
    "allowed_symbols": "add,sub,mul,div,constant,variable,sin,cos,exp,log,sqrt,square",
    "population_size": 1000,
    "generations": 1000,
    "max_length": 30,
    "n_threads": 1,
    "max_time": 120,
}


def operon_available() -> bool:
    """Whether pyoperon can be imported."""
    try:
        import pyoperon.sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def require_operon() -> None:
    """Raise ValueError with the install command unless pyoperon can be imported."""
    if not operon_available():
        raise ValueError(INSTALL_HINT)


@dataclass
class OperonRun:
    """Operon's formula on one problem and how it scores."""

    formula: sp.Expr
    test_rmse: float
    test_r2: float
    val_rmse: float
    exact: bool | None
    complexity: int
    seconds: float
    raw: str  # Operon's own string, before simplification
    budget: dict[str, Any] = field(default_factory=lambda: dict(OPERON_BUDGET))

    def summary(self) -> dict[str, Any]:
        """JSON-ready, in the keys a report's method entry uses where they apply."""
        return {
            "method": "operon",
            "formula": str(self.formula),
            "raw_formula": self.raw,
            "test_rmse": finite_or_none(self.test_rmse),
            "test_r2": finite_or_none(self.test_r2),
            "val_rmse": finite_or_none(self.val_rmse),
            "exact": self.exact,
            "complexity": self.complexity,
            "seconds": self.seconds,
            "budget": self.budget,
        }


def operon_expression(text: str, variables: list[str]) -> sp.Expr:
    """Operon's model string over placeholder names ``x0, x1, ...`` as a simplified sympy
    expression in ``variables`` (built by :func:`parse_formula`, which evaluates nothing)."""
    placeholders = [f"x{i}" for i in range(len(variables))]
    expr = parse_formula(text, max_length=max(4000, len(text)))
    expr = expr.subs(
        {sp.Symbol(p): sp.Symbol(v) for p, v in zip(placeholders, variables, strict=True)}
    )
    # Multiplying out is enough for the exactness check, which simplifies what it compares;
    # sympy's simplify has no time bound (its trigonometric pass held a bench worker for
    # half an hour on one Operon expression).
    return simplify_expression(sp.expand(expr)) if not expansion_risk(expr) else expr


def run_operon(problem: Problem, seed: int = 0, validation: float = 0.2) -> OperonRun:
    """Fit Operon on ``problem``'s fit rows and score it like the KAN methods.

    Parameters
    ----------
    problem : Problem
    seed : int
        Operon's ``random_state``.
    validation : float
        The share of training rows held out for validation, as in the pipeline.

    Returns
    -------
    OperonRun
    """
    require_operon()
    from pyoperon.sklearn import SymbolicRegressor

    start = time.perf_counter()
    rows = Split.of(problem.dataset, validation)
    fit, val = rows.fit, rows.validation
    x = fit["train_input"].double().numpy()
    y = fit["train_label"].double().numpy().ravel()
    regressor = SymbolicRegressor(random_state=seed, **OPERON_BUDGET)
    regressor.fit(x, y)
    names = [f"x{i}" for i in range(x.shape[1])]
    raw = regressor.get_model_string(regressor.model_, 12, names)
    formula = operon_expression(raw, list(problem.variables))
    data = problem.dataset
    test_rmse, test_r2 = evaluate_formula(
        formula, problem.variables, data["test_input"], data["test_label"]
    )
    val_rmse, _ = evaluate_formula(formula, problem.variables, val["x"], val["y"])
    exact = None
    if problem.truth is not None:
        exact = is_exact_recovery(
            formula, problem.truth, problem.variables, test_r2=test_r2, ranges=problem.ranges
        )
    return OperonRun(
        formula,
        test_rmse,
        test_r2,
        val_rmse,
        exact,
        formula_complexity(formula),
        time.perf_counter() - start,
        raw,
    )
