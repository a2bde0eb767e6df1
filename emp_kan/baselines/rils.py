"""RILS-ROLS (iterated local search with ordinary least squares) on the same rows as the KANs.

An optional extra: it builds from source (``pip install pybind11 wheel setuptools``, then
``pip install --no-build-isolation rils-rols``); :func:`require_rils` fails with that
instruction before any work starts. It fits on the fit rows, is scored on the same test rows
and judged by the same exactness rule; its model string is read by
:func:`~emp_kan.data.formula_parse.parse_formula` (which evaluates nothing) and multiplied out
as Operon's is. No constant is snapped.
"""

from __future__ import annotations

import time
from typing import Any

from emp_kan._runtime.numbers import finite_or_none
from emp_kan.baselines.operon import operon_expression
from emp_kan.data.problems import Problem
from emp_kan.data.split import Split
from emp_kan.symbolic.expression import evaluate_formula, formula_complexity
from emp_kan.symbolic.recovery import is_exact_recovery

__all__ = ["RILS_BUDGET", "RILS_INSTALL_HINT", "require_rils", "rils_workflow"]

RILS_INSTALL_HINT = (
    "rils-rols is not installed; install it with: pip install pybind11 wheel setuptools && "
    "pip install --no-build-isolation rils-rols"
)

#: ``RILSROLSRegressor`` settings of every run (its defaults; ``random_state`` is the seed).
RILS_BUDGET: dict[str, Any] = {"max_fit_calls": 100000, "max_time": 100}


def require_rils() -> None:
    """Raise ValueError with the install command unless rils-rols can be imported."""
    try:
        import rils_rols.rils_rols  # noqa: F401
    except ImportError:
        raise ValueError(RILS_INSTALL_HINT) from None


def rils_workflow(problem: Problem, seed: int = 0, validation: float = 0.2) -> dict[str, Any]:
    """RILS-ROLS fitted on ``problem``'s fit rows: its formula, test error and exactness, in
    the keys a bench row uses."""
    require_rils()
    from rils_rols.rils_rols import RILSROLSRegressor

    start = time.perf_counter()
    rows = Split.of(problem.dataset, validation)
    x = rows.fit["train_input"].double().numpy()
    y = rows.fit["train_label"].double().numpy().ravel()
    regressor = RILSROLSRegressor(random_state=seed, **RILS_BUDGET)
    regressor.fit(x, y)
    raw = str(regressor.model)
    formula = operon_expression(raw, list(problem.variables))
    data = problem.dataset
    test_rmse, test_r2 = evaluate_formula(
        formula, problem.variables, data["test_input"], data["test_label"]
    )
    exact = None
    if problem.truth is not None:
        exact = is_exact_recovery(
            formula, problem.truth, problem.variables, test_r2=test_r2, ranges=problem.ranges
        )
    return {
        "formula": str(formula),
        "raw_formula": raw,
        "exact": exact,
        "test_rmse": finite_or_none(test_rmse),
        "test_r2": finite_or_none(test_r2),
        "complexity": formula_complexity(formula),
        "seconds": time.perf_counter() - start,
    }
