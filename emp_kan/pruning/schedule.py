"""The pruning schedule: which step to try next, and when a pruned model is good enough.

This is the one place that decides how the round loop (:func:`emp_kan.prune_rounds`) moves:

* **Accept rule.** A pruned and retrained model is accepted when its validation RMSE is at most
  ``max((1 + tol) * reference, floor * label_std)``: no worse than ``1 + tol`` times the unpruned
  model's validation RMSE, or in any case good enough when the error is below ``floor`` times the
  spread of the training labels (``floor = 0.01`` means validation R^2 of about 0.9999). The
  reference is fixed for the whole run, so errors cannot compound from round to round.
* **Back-off ladder.** A rejected attempt is retried with a gentler step: the pruner's
  ``backed_off`` with a factor ``backoff ** j`` (EMP: ``beta * 1.5 ** j``, still the exact
  ``floor(beta * N_eff)`` rule; thresholds: divided by ``1.5 ** j``). A pruner of nodes and
  edges cycles through its targets at each factor: rung 0 both, rung 1 nodes only, rung 2
  edges only, rung 3 both at ``1.5``, ... (the node cut and the edge cut of one step can each
  be the one that does the harm). An attempt that would remove exactly what a rejected attempt
  of the round removed is skipped without retraining. When a rung of the pruner's full target
  removes nothing, no gentler rung can, and the loop has reached its fixed point (a nodes-only
  or edges-only rung that removes nothing just passes to the next rung).
* **Judging.** With a sparsity penalty (``lamb > 0``) the retrained model is judged after
  ``judge_steps`` plain LBFGS steps on a copy: the penalty costs accuracy that a short
  unpenalised fit gives back, and the question is what the pruned structure can fit. The loop
  continues from the penalised model, whose sparser scores guide the next round.
* **Where a round starts.** After an accepted attempt the next round starts on the same rung:
  the rungs below it were just rejected on a larger model.
* **Budget.** At most ``max_attempts`` prune-and-retrain attempts in all.

Only validation rows (carved from the training rows) reach these decisions; test rows are
reported and never decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emp_kan._runtime.checks import Interval

__all__ = ["DEFAULT_ROUNDS", "DEFAULT_ROUND_STEPS", "DEFAULT_SCHEDULE", "Schedule"]

#: A cap on accepted rounds (the loop normally ends earlier, at a fixed point).
DEFAULT_ROUNDS = 8
#: Training steps after each pruning attempt.
DEFAULT_ROUND_STEPS = 20


@dataclass(frozen=True)
class Schedule:
    """How the round loop backs off and what it accepts.

    Attributes
    ----------
    tol : float
        Relative slack on the unpruned model's validation RMSE.
    floor : float
        Absolute slack, as a share of the standard deviation of the training labels.
    backoff : float
        Factor applied per rung (> 1).
    max_rungs : int
        Gentler rungs tried after a rejection, per round (rung 0 is the pruner as given).
    max_attempts : int
        Prune-and-retrain attempts in the whole run.
    validation_fraction : float
        Share of the training rows (the last ones) held out to take the decisions.
    judge_steps : int
        Unpenalised steps on a copy before an attempt is judged (when ``lamb > 0``).
    """

    tol: float = 0.5
    floor: float = 0.01
    backoff: float = 1.5
    max_rungs: int = 8
    max_attempts: int = 12
    validation_fraction: float = 0.2
    judge_steps: int = 5

    def __post_init__(self) -> None:
        checks = {
            "tol": Interval(float, 0),
            "floor": Interval(float, 0),
            "backoff": Interval(float, 1, closed="neither"),
            "max_rungs": Interval(int, 0),
            "max_attempts": Interval(int, 0),
            "validation_fraction": Interval(float, 0, 1, closed="neither"),
            "judge_steps": Interval(int, 0),
        }
        for name, check in checks.items():
            check.check(name, getattr(self, name))

    def accept_below(self, reference_rmse: float, label_std: float) -> float:
        """The largest validation RMSE an attempt may have and still be accepted."""
        return max((1.0 + self.tol) * reference_rmse, self.floor * label_std)

    def rung(self, pruner: Any, k: int) -> Any:
        """The pruner of rung ``k`` (0: as given; higher: gentler).

        For a pruner of nodes and edges (``target="both"``) the rungs cycle through three
        targets at each factor ``backoff ** (k // 3)``: both, nodes only, edges only. Otherwise
        rung ``k`` is ``backoff ** k``.
        """
        if k == 0:
            return pruner
        if getattr(pruner, "target", None) == "both":
            return pruner.backed_off(self.backoff ** (k // 3), target=_CYCLE[k % 3])
        return pruner.backed_off(self.backoff**k)


_CYCLE = ("both", "nodes", "edges")

#: The defaults shared by prune_rounds, the CLI, the estimator and the bench.
DEFAULT_SCHEDULE = Schedule()
