"""The settings of a discovery run, with the defaults the CLI, the estimator and the bench share.

Kept apart from :mod:`emp_kan.discovery.run` so that reading the defaults
(``emp-kan --help``) imports no torch, sympy or pykan (a test in tests/test_cli.py holds it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from emp_kan.pruning.schedule import (
    DEFAULT_ROUND_STEPS,
    DEFAULT_ROUNDS,
    DEFAULT_SCHEDULE,
    Schedule,
)
from emp_kan.symbolic.library import DEFAULT_LIBRARY

__all__ = ["TRANSFORMS", "DiscoverConfig"]

# What the transform setting may ask for (see emp_kan.discovery.routes.plan_routes).
TRANSFORMS = ("auto", "none", "log", "log-y")


@dataclass
class DiscoverConfig:
    """Settings of one discovery run: the one set of defaults that the CLI, the estimator and
    the bench share (the CLI documents each option)."""

    width: list[int] | None = None  # default [n_inputs, 5, 1]
    grid: int = 5
    k: int = 3
    steps: int = 50  # initial training, and the final unregularised polish
    round_steps: int = DEFAULT_ROUND_STEPS  # retraining after each pruning attempt
    rounds: int = DEFAULT_ROUNDS  # a cap on accepted rounds; the loop stops at a fixed point
    lamb: float = 1e-3
    tol: float = DEFAULT_SCHEDULE.tol
    floor: float = DEFAULT_SCHEDULE.floor
    validation: float = DEFAULT_SCHEDULE.validation  # share of training rows that decide
    beta: float = 1.0
    prune: str = "both"
    scope: str = "layer"
    edge_score: str = "attribution"  # see emp_kan.kan.scores; both pruners use them
    node_score: str = "attribution"
    library: tuple[str, ...] = DEFAULT_LIBRARY
    transform: str = "auto"  # also fit log|y| over log|x| where it applies; see pipeline
    # Every route even when an earlier one already gave a formula at the noise floor on the
    # validation rows (which no later route can beat, only tie); see discovery.run.run_method.
    all_routes: bool = False
    seed: int = 0
    compare: bool = True  # also prune with pykan's thresholds, from the same trained model
    operon: bool = False  # also run pyoperon's genetic programming on the same rows
    noise: float = 0.0  # label noise (std x SIGMA) added to the training rows; see data
    progress: bool = False
    # Processes that run the methods side by side (EMP here, thresholds in a forked child);
    # 1 runs them one after the other. More than the machine's CPUs are never used.
    workers: int = 2

    def schedule(self) -> Schedule:
        """The round loop's accept rule and back-off ladder for these settings."""
        return replace(DEFAULT_SCHEDULE, tol=self.tol, floor=self.floor,
                       validation=self.validation)  # fmt: skip

    def check(self, n_inputs: int) -> None:
        """Raise ValueError for settings that cannot work, before any training."""
        from emp_kan.pruning.pruners import EMPPruner
        from emp_kan.symbolic.edge_fit import check_library

        check_library(self.library)
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, got "
                             f"{self.transform!r}")  # fmt: skip
        EMPPruner(target=self.prune, scope=self.scope, beta=self.beta,
                  edge_score=self.edge_score, node_score=self.node_score)  # validates
        for name in ("grid", "k", "steps", "round_steps", "rounds", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.operon:
            from emp_kan.baselines.operon import require_operon

            require_operon()
        for name in ("lamb", "tol", "floor", "noise"):  # noise: see data.problems.check_noise
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value >= 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a whole number >= 1, got {self.workers!r}")
        if not isinstance(self.all_routes, bool):
            raise ValueError(f"all_routes must be True or False, got {self.all_routes!r}")
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
