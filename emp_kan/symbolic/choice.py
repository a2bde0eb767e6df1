"""Choosing one formula among candidates of different complexity, the way PySR does.

Every candidate (one per route: the data as given, the log transform, ...) has a validation
RMSE and a complexity. The Pareto front keeps each candidate that no simpler one matches in
accuracy; on the front, a candidate's score is the drop of log RMSE per unit of complexity from
its simpler neighbour; the choice is the best-scoring candidate among those within 1.5x of the
most accurate RMSE (PySR's ``model_selection="best"``). Errors below a floor count as equal, so
that of two formulas the data cannot tell apart the simpler is chosen: 1e-5 of the label spread
(float32 rounding, not model error), or, given the number of validation rows, the best error
times ``1 + 1/sqrt(n)`` (its sampling spread: with noisy labels, a formula that fits the noise
is no better than the law). Where the labels are noisy - the most accurate candidate's error is
at least half an upper bound of the noise (the nearest-neighbour estimate or the pruned KAN's
validation error) - only the candidates tied with the most accurate are eligible, so the
simplest formula that explains the data down to the noise wins: an error 1.5x the noise's is a
law missed, not a simpler law. ``model_selection="accuracy"`` takes the most accurate candidate
instead (of equally accurate ones, the simplest: the front's last).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["MODEL_SELECTIONS", "choose_formula", "noise_floor", "noise_tie", "pareto_front"]

MODEL_SELECTIONS = ("best", "accuracy")

_WITHIN = 1.5
_NOISY = 0.5
_NOISE_FLOOR = 1e-5


def noise_floor(label_std: float) -> float:
    """The RMSE below which errors count as equal (float32 rounding, not model error): 1e-5
    of the validation labels' standard deviation ``label_std``, 0 where that is not a positive
    number. No candidate can beat one at the floor."""
    return _NOISE_FLOOR * label_std if math.isfinite(label_std) and label_std > 0 else 0.0


def noise_tie(rmses: Sequence[float], n_rows: int | None) -> float:
    """The RMSE below which candidates tie with the most accurate one on ``n_rows`` validation
    rows: ``min(rmses) * (1 + 1/sqrt(n_rows))``, 0 without ``n_rows`` or a finite RMSE.

    An RMSE measured on ``n`` rows of noisy labels wanders by about ``1/sqrt(2n)`` of itself
    from one draw of the rows to another, and a formula that fits some of the noise beats
    the law by about as much: below this limit the rows cannot tell the two apart. Without
    noise the most accurate candidate is the exact law, near 0, and the limit with it.
    """
    finite = [r for r in rmses if math.isfinite(r)]
    if not n_rows or n_rows < 1 or not finite:
        return 0.0
    return min(finite) * (1.0 + 1.0 / math.sqrt(n_rows))


def _floored(rmse: float, floor: float) -> float:
    return max(rmse, floor) if math.isfinite(rmse) else math.inf


def pareto_front(
    complexities: Sequence[int],
    rmses: Sequence[float],
    floor: float = 0.0,
    sizes: Sequence[int] | None = None,
    floats: Sequence[int] | None = None,
) -> list[int]:
    """Indices of the candidates on the front, simplest first.

    A candidate is on the front when every simpler candidate (or an equally complex one with
    fewer ``floats``, i.e. unsnapped constants, or else a smaller ``sizes`` entry, e.g. fewer
    KAN edges, or else listed before it) has a larger RMSE. RMSEs below ``floor`` count as
    ``floor``; non-finite ones are never on the front.
    """
    sizes = sizes if sizes is not None else [0] * len(rmses)
    floats = floats if floats is not None else [0] * len(rmses)
    order = sorted(range(len(rmses)), key=lambda i: (complexities[i], floats[i], sizes[i], i))
    front, best = [], math.inf
    for i in order:
        error = _floored(rmses[i], floor)
        if error < best:
            front.append(i)
            best = error
    return front


def choose_formula(
    complexities: Sequence[int],
    rmses: Sequence[float],
    label_std: float,
    sizes: Sequence[int] | None = None,
    model_selection: str = "best",
    n_rows: int | None = None,
    noise_bound: float | None = None,
    floats: Sequence[int] | None = None,
) -> int | None:
    """The index of the chosen candidate, or None when no candidate has a finite RMSE.

    Parameters
    ----------
    complexities : sequence of int
    rmses : sequence of float
        Validation RMSE of each candidate.
    label_std : float
        Standard deviation of the validation labels (sets the noise floor).
    sizes : sequence of int, optional
        Breaks ties of complexity and RMSE: the smaller wins (the pruned KAN's live edges).
    model_selection : {"best", "accuracy"}
        ``"best"``: the steepest drop of log RMSE per unit of complexity among the candidates
        within 1.5x of the most accurate; ``"accuracy"``: the most accurate.
    n_rows : int, optional
        The validation rows the RMSEs were measured on. Given, errors within the sampling
        spread of the best one, ``best * (1 + 1/sqrt(n_rows))``, count as equal too
        (:func:`noise_tie`): no candidate can be told apart from the best by those rows, and
        the simplest of them wins.
    noise_bound : float, optional
        An upper bound of the validation labels' noise standard deviation (e.g. the
        nearest-neighbour estimate, or the pruned KAN's validation RMSE). When the most accurate
        candidate's RMSE is at least half of it, the noise dominates every error: ``"best"``
        then takes the simplest candidate tied with the most accurate (needs ``n_rows`` to
        see the tie) instead of the steepest drop within 1.5x of it.
    floats : sequence of int, optional
        Unsnapped constants of each formula: of equally complex candidates whose errors tie,
        the one with fewer comes first (``q/(4*pi*epsilon*r)`` before
        ``sin(0.0797*q/r)/epsilon``), before ``sizes`` decides.
    """
    if len(complexities) != len(rmses):
        raise ValueError("one complexity per RMSE")
    if model_selection not in MODEL_SELECTIONS:
        raise ValueError(
            f"model_selection must be one of {', '.join(MODEL_SELECTIONS)}, got {model_selection!r}"
        )
    floor = max(noise_floor(label_std), noise_tie(rmses, n_rows))
    front = pareto_front(complexities, rmses, floor, sizes, floats)
    if not front:
        return None
    if model_selection == "accuracy":
        return front[-1]  # the front's errors fall with complexity: its last is the lowest
    errors = [_floored(rmses[i], floor) for i in front]
    best_error = min(errors)
    noisy = (
        noise_bound is not None
        and math.isfinite(noise_bound)
        and noise_bound > 0
        and min(r for r in rmses if math.isfinite(r)) >= _NOISY * noise_bound
    )
    limit = best_error if noisy else _WITHIN * best_error
    chosen, chosen_score = None, -math.inf
    for position, i in enumerate(front):
        if errors[position] > limit:
            continue
        if position == 0:
            score = 0.0
        else:
            previous = front[position - 1]
            gain = (
                math.log(errors[position - 1]) - math.log(errors[position])
                if (errors[position] > 0)
                else math.inf
            )
            score = gain / max(1, complexities[i] - complexities[previous])
        if score > chosen_score:
            chosen, chosen_score = i, score
    return chosen
