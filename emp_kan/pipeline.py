"""The whole discovery: train once, then EMP rounds -> formula, and (for comparison) pykan's
threshold rounds -> the same symbolic stage, both from the same trained model."""

from __future__ import annotations

import logging
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from emp_kan import __version__
from emp_kan.data import Problem
from emp_kan.kan import adapter
from emp_kan.pruning.pruners import EMPPruner, ThresholdPruner
from emp_kan.pruning.rounds import PruneResult, prune_rounds, train
from emp_kan.symbolic.edge_fit import DEFAULT_LIBRARY, check_library
from emp_kan.symbolic.recovery import is_exact_recovery
from emp_kan.symbolic.search import SymbolicFormula, fit_formula

log = logging.getLogger("emp_kan")

__all__ = ["DiscoverConfig", "MethodRun", "discover", "run_method", "versions"]


@dataclass
class DiscoverConfig:
    """Settings of one discovery run (the CLI's options; defaults documented there)."""

    width: list[int] | None = None  # default [n_inputs, 5, 1]
    grid: int = 5
    k: int = 3
    steps: int = 50  # initial training, and the final unregularised polish
    round_steps: int = 20  # retraining after each pruning round
    rounds: int = 3
    lamb: float = 1e-3
    tol: float = 0.5
    beta: float = 1.0
    prune: str = "both"
    scope: str = "layer"
    library: tuple[str, ...] = DEFAULT_LIBRARY
    seed: int = 0
    compare: bool = True
    progress: bool = False

    def check(self, n_inputs: int) -> None:
        """Raise ValueError for settings that cannot work, before any training."""
        check_library(self.library)
        EMPPruner(target=self.prune, scope=self.scope, beta=self.beta)  # validates
        for name in ("grid", "k", "steps", "round_steps", "rounds", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        for name in ("lamb", "tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value >= 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.grid < 1 or self.k < 1:
            raise ValueError("grid and k must be at least 1")
        if self.width is not None:
            if len(self.width) < 2 or any(w < 1 for w in self.width):
                raise ValueError(f"width must list at least two positive layer sizes, got "
                                 f"{self.width}")  # fmt: skip
            if self.width[0] != n_inputs or self.width[-1] != 1:
                raise ValueError(
                    f"width must start with the {n_inputs} inputs and end with 1 output, "
                    f"got {self.width}"
                )

    def model_width(self, n_inputs: int) -> list[int]:
        return list(self.width) if self.width else [n_inputs, 5, 1]


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
            "rounds": [
                {
                    "round": r["round"],
                    "accepted": r["accepted"],
                    "status": r["status"],
                    "edges_alive": r["edges_alive"],
                    "nodes_alive": r["nodes_alive"],
                    "test_rmse_before": r["test_rmse_before"],
                    "test_rmse_after_prune": r["test_rmse_after_prune"],
                    "test_rmse_after_retrain": r["test_rmse_after_retrain"],
                    "layers": r["layers"],
                }  # fmt: skip
                for r in hist
            ],
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


def run_method(name, pruner, trained, problem, config, seconds_train) -> MethodRun:
    """Prune ``trained`` with ``pruner`` in the round loop, then run the symbolic stage."""
    start = time.perf_counter()
    pruned = prune_rounds(trained, problem.dataset, pruner, rounds=config.rounds,
                          steps=config.round_steps, lamb=config.lamb, tol=config.tol,
                          initial_steps=0, final_steps=config.steps, seed=config.seed,
                          progress=config.progress)  # fmt: skip
    seconds_prune = time.perf_counter() - start
    start = time.perf_counter()
    formula = fit_formula(pruned, problem.dataset, variables=problem.variables,
                          library=config.library, seed=config.seed,
                          progress=config.progress)  # fmt: skip
    seconds_symbolic = time.perf_counter() - start
    exact = None
    if problem.truth is not None:
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
    model = adapter.make_kan(width, grid=config.grid, k=config.k, seed=config.seed)
    start = time.perf_counter()
    trained = train(model, problem.dataset, steps=config.steps, lamb=config.lamb,
                    seed=config.seed)  # fmt: skip
    seconds_train = time.perf_counter() - start
    runs = {"emp": run_method("emp", EMPPruner(target=config.prune, scope=config.scope,
                                                beta=config.beta),
                               trained, problem, config, seconds_train)}  # fmt: skip
    if config.compare:
        runs["threshold"] = run_method("threshold", ThresholdPruner(), trained, problem, config,
                                        seconds_train)  # fmt: skip
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
