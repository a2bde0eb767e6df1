"""Capacity escalation: when a trained KAN's splines are far from the data on the validation
rows, larger KANs are tried (wider, one layer deeper, a finer grid) and the best kept, each
step decided on the validation rows alone and recorded."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from emp_kan._runtime.numbers import finite_or_none
from emp_kan.kan import adapter
from emp_kan.kan.training import train

log = logging.getLogger("emp_kan")

__all__ = ["CapacityStep", "escalate", "validation_rmse"]

# A larger KAN is kept only for a clear gain: one within 20% of the current model's error is as
# likely noise in 60 validation rows as capacity.
_GAIN = 0.8
_MAX_GRID = 40


@dataclass(frozen=True)
class CapacityStep:
    """One larger KAN tried: what changed, the validation RMSEs before (the best model so far)
    and after, whether it was kept, and its training seconds."""

    change: str  # e.g. "hidden 5 -> 10"
    widths: list[int]
    grid: int
    val_rmse_before: float
    val_rmse_after: float
    kept: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "widths": list(self.widths),
            "grid": self.grid,
            "val_rmse_before": finite_or_none(self.val_rmse_before),
            "val_rmse_after": finite_or_none(self.val_rmse_after),
            "kept": self.kept,
            "seconds": round(self.seconds, 3),
        }


Rows = Mapping[str, torch.Tensor]


def validation_rmse(model: Any, validation: Rows) -> float:
    """The model's RMSE on ``validation`` (``{"x": (n, w_0), "y": (n, 1)}``); inf when it is
    not finite."""
    value = adapter.rmse(model, validation["x"], validation["y"])
    return value if math.isfinite(value) else math.inf


def _wider(model: Any, fit: Rows, training: dict[str, Any]) -> tuple[str, Any]:
    w = adapter.widths(model)
    wider = [w[0], *(2 * h for h in w[1:-1]), w[-1]]
    change = f"hidden {','.join(map(str, w[1:-1]))} -> {','.join(map(str, wider[1:-1]))}"
    fresh = adapter.make_kan(wider, grid=int(model.grid), k=int(model.k), seed=training["seed"])
    return change, train(fresh, fit, **training)


def _deeper(model: Any, fit: Rows, training: dict[str, Any]) -> tuple[str, Any]:
    w = adapter.widths(model)
    deeper = [*w[:-1], w[-2], w[-1]]
    change = f"layers {len(w) - 1} -> {len(deeper) - 1}"
    fresh = adapter.make_kan(deeper, grid=int(model.grid), k=int(model.k), seed=training["seed"])
    return change, train(fresh, fit, **training)


def _finer(model: Any, fit: Rows, training: dict[str, Any]) -> tuple[str, Any]:
    grid = int(model.grid)
    finer = min(2 * grid, _MAX_GRID)
    refined = adapter.refine_grid(model, finer, fit["train_input"])
    return f"grid {grid} -> {finer}", train(refined, fit, **training)


# The ladder's order: a wider layer and one more layer add the nodes that sums of products and
# functions of sums need (the common cause of inaccurate splines on the Feynman laws); a finer
# grid then sharpens the curves of the best model so far.
LADDER: tuple[Callable[..., tuple[str, Any]], ...] = (_wider, _deeper, _finer)


def escalate(
    model: Any,
    fit: Rows,
    validation: Rows,
    *,
    steps: int,
    lamb: float,
    seed: int,
    enough: float,
    budget: int,
    early_stopping: bool = False,
) -> tuple[Any, list[CapacityStep]]:
    """The best of ``model`` and the larger KANs of :data:`LADDER`, on the validation rows.

    Parameters
    ----------
    model : MultKAN
        The trained KAN, ``[w_0, ..., 1]``.
    fit : dict of torch.Tensor
        The pykan dataset the larger KANs train on (its ``test_*`` rows are not used).
    validation : dict of torch.Tensor
        ``{"x": (n, w_0), "y": (n, 1)}``: the rows every step is judged on, kept out of ``fit``.
    steps, lamb, seed, early_stopping : int, float, int, bool
        Each larger KAN's training budget and settings (as the first training's; see
        :func:`~emp_kan.kan.training.train`).
    enough : float
        A validation RMSE at or below this needs no more capacity: the ladder stops there (and
        is not started when ``model`` is already there).
    budget : int
        At most this many larger KANs are trained (0: none).

    Returns
    -------
    model : MultKAN
        The kept model: a larger KAN only when its validation RMSE is below 0.8x the best so
        far; ``model`` itself otherwise.
    steps : list of CapacityStep
        Each larger KAN tried, in order.
    """
    training = {"steps": steps, "lamb": lamb, "seed": seed, "early_stopping": early_stopping}
    best, best_rmse = model, validation_rmse(model, validation)
    record: list[CapacityStep] = []
    for propose in LADDER[: max(0, budget)]:
        if best_rmse <= enough:
            break
        start = time.perf_counter()
        try:
            change, candidate = propose(best, fit, training)
        except (RuntimeError, ValueError) as exc:  # a larger KAN that fails costs nothing else
            log.info("capacity step %s failed: %s", propose.__name__.strip("_"), exc)
            continue
        after = validation_rmse(candidate, validation)
        kept = after < _GAIN * best_rmse
        record.append(
            CapacityStep(
                change,
                adapter.widths(candidate),
                int(candidate.grid),
                best_rmse,
                after,
                kept,
                time.perf_counter() - start,
            )
        )
        log.info(
            "capacity: %s, validation RMSE %.3g -> %.3g (%s)",
            change,
            best_rmse,
            after,
            "kept" if kept else "not kept",
        )
        if kept:
            best, best_rmse = candidate, after
    return best, record
