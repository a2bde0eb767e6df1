"""The whole discovery: train once, then EMP rounds -> formula, and (for comparison) pykan's
threshold rounds -> the same symbolic stage, both from the same trained model."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from emp_kan import __version__
from emp_kan.config import DiscoverConfig
from emp_kan.data import Problem, split_validation
from emp_kan.kan import adapter
from emp_kan.pruning.pruners import EMPPruner, ThresholdPruner
from emp_kan.pruning.rounds import (
    PruneResult,
    prune_rounds,
    train,
)
from emp_kan.symbolic.recovery import is_exact_recovery
from emp_kan.symbolic.search import SymbolicFormula, fit_formula

log = logging.getLogger("emp_kan")

__all__ = ["DiscoverConfig", "MethodRun", "discover", "make_pruner", "run_method", "train_dense",
           "versions"]


@dataclass
class MethodRun:
    """One pruning method's result within a discovery run."""

    name: str
    pruned: PruneResult
    formula: SymbolicFormula
    exact: bool | None
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self, initial_widths: list[int]) -> dict[str, Any]:
        hist = self.pruned.to_dict()["history"]
        edges0 = sum(a * b for a, b in zip(initial_widths[:-1], initial_widths[1:], strict=True))
        return {
            "method": self.name,
            "formula": str(self.formula.expression),
            "latex": self.formula.latex(),
            "test_rmse": _num(self.formula.test_rmse),
            "test_r2": _num(self.formula.test_r2),
            "explains_data": self.formula.explains_data,
            "exact": self.exact,
            "complexity": self.formula.complexity,
            "spline_test_rmse": _num(self.pruned.final_test_rmse),
            "edges": {"initial": edges0, "final": self.pruned.edges_alive},
            "nodes": {
                "initial": sum(initial_widths[1:-1]),
                "final": sum(adapter.widths(self.pruned.model)[1:-1]),
            },  # fmt: skip
            "widths": adapter.widths(self.pruned.model),
            "stop_reason": self.pruned.stop_reason,
            "accept_below": _num(self.pruned.accept_below),
            "rejected_attempts": self.pruned.rejected_attempts,
            "spline_val_rmse": {"initial": _num(self.pruned.initial_val_rmse),
                                "final": _num(self.pruned.final_val_rmse)},  # fmt: skip
            # Every attempt, accepted or not: the decision used the val_* numbers only.
            "rounds": [
                {key: r[key] for key in (
                    "attempt", "round", "rung", "pruner", "accepted", "status", "edges_alive",
                    "nodes_alive", "val_rmse_before", "val_rmse_after_prune",
                    "val_rmse_after_retrain", "accept_below", "test_rmse_before",
                    "test_rmse_after_prune", "test_rmse_after_retrain", "layers")}
                for r in hist
            ],  # fmt: skip
            "timings": self.timings,
            "symbolic_edges": self.formula.to_dict()["edges"],
            "warnings": self.formula.warnings + [w for r in hist for w in r["warnings"]],
        }


def _num(x: float) -> float | None:
    return None if x is None or x != x or x in (float("inf"), float("-inf")) else float(x)


def versions() -> dict[str, str]:
    """Versions of the parts that decide the numbers."""
    import numpy
    import sympy
    import torch

    try:
        from importlib.metadata import version

        pykan = version("pykan")
    except Exception:  # not installed as a distribution
        pykan = "unknown"
    return {"emp_kan": __version__, "pykan": pykan, "torch": torch.__version__,
            "numpy": numpy.__version__, "sympy": sympy.__version__,
            "python": platform.python_version()}  # fmt: skip


def train_dense(problem: Problem, config: DiscoverConfig) -> tuple[Any, float]:
    """The unpruned KAN both pruning methods start from, trained on the fit rows only.

    Returns the trained model and the seconds it took. The validation rows (the last share of
    the training rows, see :func:`emp_kan.data.split_validation`) are kept out of training so
    that the round loop and the symbolic stage can decide on them.
    """
    width = config.model_width(len(problem.variables))
    fit, _ = split_validation(problem.dataset, config.validation)
    model = adapter.make_kan(width, grid=config.grid, k=config.k, seed=config.seed)
    start = time.perf_counter()
    trained = train(model, fit, steps=config.steps, lamb=config.lamb, seed=config.seed)
    return trained, time.perf_counter() - start


def make_pruner(method: str, config: DiscoverConfig) -> EMPPruner | ThresholdPruner:
    """The pruner of ``method`` ("emp" or "threshold") for these settings."""
    if method == "emp":
        return EMPPruner(target=config.prune, scope=config.scope, beta=config.beta)
    if method == "threshold":
        return ThresholdPruner()
    raise ValueError(f"unknown method {method!r}; use 'emp' or 'threshold'")


def run_method(name, pruner, trained, problem, config, seconds_train,
               symbolic: bool = True) -> MethodRun:  # fmt: skip
    """Prune ``trained`` with ``pruner`` in the round loop, then run the symbolic stage.

    The one orchestration of train -> prune -> formula: :func:`discover`, the bench and
    :class:`~emp_kan.EMPKANRegressor` all call it.
    """
    start = time.perf_counter()
    pruned = prune_rounds(trained, problem.dataset, pruner, rounds=config.rounds,
                          steps=config.round_steps, lamb=config.lamb,
                          schedule=config.schedule(), initial_steps=0,
                          final_steps=config.steps, seed=config.seed,
                          progress=config.progress)  # fmt: skip
    seconds_prune = time.perf_counter() - start
    start = time.perf_counter()
    formula = None
    if symbolic:
        formula = fit_formula(pruned, problem.dataset, variables=problem.variables,
                              library=config.library, seed=config.seed,
                              progress=config.progress,
                              validation=config.validation)  # fmt: skip
    seconds_symbolic = time.perf_counter() - start
    exact = None
    if formula is not None and problem.truth is not None:
        exact = is_exact_recovery(formula.expression, problem.truth, problem.variables,
                                  test_r2=formula.test_r2, ranges=problem.ranges)  # fmt: skip
    timings = {"train": seconds_train, "prune": seconds_prune, "symbolic": seconds_symbolic,
               "total": seconds_train + seconds_prune + seconds_symbolic}  # fmt: skip
    return MethodRun(name, pruned, formula, exact, timings)


def discover(problem: Problem, config: DiscoverConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the pipeline on ``problem``.

    Returns
    -------
    report : dict
        JSON-ready: the EMP run's summary at top level, ``baseline`` for the threshold run (or
        None), ``truth``, ``variables``, ``seed``, ``settings``, ``versions``.
    runs : dict of MethodRun
        ``"emp"`` and, when comparing, ``"threshold"``: models and formulas for pictures.
    """
    n_inputs = len(problem.variables)
    config.check(n_inputs)
    width = config.model_width(n_inputs)
    trained, seconds_train = train_dense(problem, config)
    methods = ("emp", "threshold") if config.compare else ("emp",)
    runs = {m: run_method(m, make_pruner(m, config), trained, problem, config, seconds_train)
            for m in methods}  # fmt: skip
    report = runs["emp"].summary(width)
    report.update({
        "dataset": problem.name,
        "variables": list(problem.variables),
        "target": problem.target,
        "truth": None if problem.truth is None else str(problem.truth),
        "seed": config.seed,
        "settings": {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in asdict(config).items() if k != "progress"},
        "versions": versions(),
        "baseline": runs["threshold"].summary(width) if "threshold" in runs else None,
    })  # fmt: skip
    return report, runs
