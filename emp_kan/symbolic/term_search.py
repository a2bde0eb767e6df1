"""Searching over a formula's terms on the validation rows: linked compositions chosen
jointly, simpler functions tried per edge, terms dropped, and terms kept defined on the
training box."""

from __future__ import annotations

import logging
import math

import numpy as np

from emp_kan.symbolic.expression import rmse_r2
from emp_kan.symbolic.formula_terms import (
    evaluate_terms,
    refit_terms,
    swap_term,
)
from emp_kan.symbolic.registry import library_function

log = logging.getLogger("emp_kan")

__all__ = [
    "box_points",
    "chain_search",
    "defined_on_box",
    "drop_terms",
    "simplify_edges",
    "terms_rmse_r2",
]


def terms_rmse_r2(terms, consts, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return rmse_r2(evaluate_terms(terms, consts, x)[0], y)


# A term may go when the validation RMSE stays within 5% of the RMSE before any term went, or
# below 1e-4 of the labels' spread (float32 labels and spline fits carry no more than that).
DROP_REL_TOL = 0.05


DROP_ABS_TOL = 1e-4


def _allowed_rmse(start_rmse: float, y_val: np.ndarray) -> float:
    """The validation RMSE a removal or simplification may reach (see ``DROP_REL_TOL``)."""
    return max(start_rmse * (1 + DROP_REL_TOL), DROP_ABS_TOL * float(np.std(y_val)))


def drop_terms(terms, consts, fit_xy, val_xy, fit_of_key, refit_evals, max_failures: int = 2):
    """Remove terms the formula does not need, least needed first; return (terms, consts).

    A term is tried by removing it and refitting the rest; the removal stays when the
    validation RMSE stays within the tolerance (``DROP_REL_TOL``, ``DROP_ABS_TOL``) of the
    formula before any removal. Terms are tried in order of the validation RMSE without them
    (no refit), and the pass stops after ``max_failures`` refused removals, so its cost is a
    few refits. Removed edges are recorded as constants in ``fit_of_key``.
    """
    x_val, y_val = val_xy
    start_rmse, _ = terms_rmse_r2(terms, consts, x_val, y_val)
    allowed = _allowed_rmse(start_rmse, y_val)
    without = []
    for t in terms:
        rest = [u for u in terms if u.key != t.key]
        rmse, _ = terms_rmse_r2(rest, consts, x_val, y_val)
        without.append((rmse if math.isfinite(rmse) else math.inf, t.key))
    failures = 0
    for _, key in sorted(without):
        if failures >= max_failures or len(terms) <= 1:
            break
        trial = [u for u in terms if u.key != key]
        t_terms, t_consts = refit_terms(trial, consts, *fit_xy, refit_evals)
        rmse, _ = terms_rmse_r2(t_terms, t_consts, x_val, y_val)
        if not (math.isfinite(rmse) and rmse <= allowed):
            failures += 1
            continue
        fit = fit_of_key.get(key)
        if fit is not None:
            fit.note = (
                f"dropped ({fit.function}): without it the validation RMSE is {rmse:.3g} "
                f"(was {start_rmse:.3g})"
            )
            fit.function = "0"
        terms, consts = t_terms, t_consts
    return terms, consts


def _chains(terms) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """Pairs of edges (into a hidden node, out of it) where the node has one input edge only:
    links of a composition ``g(f(x))``."""
    inputs: dict[tuple[int, int], list] = {}
    for t in terms:
        inputs.setdefault((t.layer, t.out), []).append(t.key)
    pairs = []
    for t in terms:
        feeding = inputs.get((t.layer - 1, t.inp), [])
        if t.layer > 0 and len(feeding) == 1:
            pairs.append((feeding[0], t.key))
    return pairs


def chain_search(
    terms,
    consts,
    fit_of_key,
    scales,
    fit_xy,
    val_xy,
    top_k,
    refit_evals,
    val_rmse,
    val_r2,
    max_trials: int = 24,
    finalists: int = 2,
):
    """Search both functions of a composition link together: every pair of the two edges'
    top ``top_k`` candidates, refitted end to end, kept when the validation RMSE drops.

    The one-edge swaps before cannot find ``exp(sin(x))`` when the per-edge fits chose
    ``sin`` for the outer edge and ``tanh`` for the inner one: each swap alone is worse.
    Each pair is first refitted with a quarter of the budget; the ``finalists`` best on the
    validation rows go on from there with the whole budget and are judged (most pairs are
    wrong, and a wrong pair spends its whole budget failing to converge).
    Returns ``(terms, consts, val_rmse, val_r2)``.
    """
    screen_evals = max(4, refit_evals // 4)
    trials = 0
    for first, second in _chains(terms):
        fits = fit_of_key.get(first), fit_of_key.get(second)
        if None in fits:
            continue
        screened = []
        for c1 in fits[0].candidates[:top_k]:
            for c2 in fits[1].candidates[:top_k]:
                if trials >= max_trials:
                    break
                if (c1.function, c2.function) == (fits[0].function, fits[1].function):
                    continue
                if "0" in (c1.function, c2.function):
                    continue
                trials += 1
                t_terms, t_consts = swap_term(terms, consts, first, c1, scales[first[0]][first[1]])
                t_terms, t_consts = swap_term(
                    t_terms, t_consts, second, c2, scales[second[0]][second[1]]
                )
                t_terms, t_consts = refit_terms(t_terms, t_consts, *fit_xy, screen_evals)
                rmse, _ = terms_rmse_r2(t_terms, t_consts, *val_xy)
                if math.isfinite(rmse):
                    screened.append((rmse, len(screened), t_terms, t_consts, c1, c2))
        screened.sort(key=lambda entry: entry[:2])
        best = None
        for _, _, t_terms, t_consts, c1, c2 in screened[:finalists]:
            t_terms, t_consts = refit_terms(t_terms, t_consts, *fit_xy, refit_evals)
            rmse, r2 = terms_rmse_r2(t_terms, t_consts, *val_xy)
            if math.isfinite(rmse) and rmse < val_rmse and (best is None or rmse < best[2]):
                best = (t_terms, t_consts, rmse, r2, c1, c2)
        if best is not None:
            terms, consts, val_rmse, val_r2, c1, c2 = best
            for fit, cand in zip(fits, (c1, c2), strict=True):
                fit.function, fit.r2 = cand.function, cand.r2
                fit.note = "chosen jointly with the other edge of its composition link"
    if trials:
        log.info("composition search: %d trials, validation R^2 %.6f", trials, val_r2)
    return terms, consts, val_rmse, val_r2


def _simplicity(function: str) -> tuple[int, int]:
    """Sort key of a library function: (complexity, rank), both from the registry."""
    entry = library_function(function)
    return entry.complexity, entry.rank


def simplify_edges(
    terms, consts, fit_xy, val_xy, fit_of_key, scales, refit_evals, max_failures: int = 3
):
    """Swap edges to simpler library functions the formula can do without; return
    (terms, consts).

    Occam's razor with the term-dropping pass's tolerance: an edge whose chosen function has a
    simpler candidate (lower complexity, e.g. ``x`` for a ``sqrt`` fitted to a nearly straight
    spline; at equal complexity, of lower rank in the registry, e.g. ``x^2`` for a ``cos``
    whose small frequency imitates a parabola) takes it when, after a refit, the validation
    RMSE stays within ``DROP_REL_TOL`` of the formula before any swap (or under
    ``DROP_ABS_TOL`` of the labels' spread). Per-edge fits cannot see this: a slightly curved
    spline often only compensates another edge's error, and a parabola and a slow cosine fit a
    spline equally well. Swaps refused one at a time are then tried together once (two slow
    cosines can stand for a product only together: ``(a+b)^2 - (a-b)^2``). The pass stops after
    ``max_failures`` refused swaps.
    """
    x_val, y_val = val_xy
    start_rmse, _ = terms_rmse_r2(terms, consts, x_val, y_val)
    if not math.isfinite(start_rmse):
        return terms, consts
    allowed = _allowed_rmse(start_rmse, y_val)
    live = {t.key for t in terms}
    failures = 0
    refused: list = []
    for key, fit in sorted(fit_of_key.items()):
        if failures >= max_failures:
            break
        if key not in live:
            continue
        current = _simplicity(fit.function)
        chosen = next((c for c in fit.candidates if c.function == fit.function), None)
        if chosen is None:
            continue
        # Only a candidate that fits the edge's spline about as well (held-out error at most
        # twice the chosen one's) can stand in for it.
        simpler = sorted(
            (
                c
                for c in fit.candidates
                if c.function != "0"
                and _simplicity(c.function) < current
                and c.nrmse <= 2.0 * max(chosen.nrmse, 1e-12)
            ),
            key=lambda c: (*_simplicity(c.function), c.cost),
        )
        if not simpler:
            continue
        cand = simpler[0]
        t_terms, t_consts = swap_term(terms, consts, key, cand, scales[key[0]][key[1]])
        t_terms, t_consts = refit_terms(t_terms, t_consts, *fit_xy, refit_evals)
        rmse, _ = terms_rmse_r2(t_terms, t_consts, x_val, y_val)
        if not (math.isfinite(rmse) and rmse <= allowed):
            failures += 1
            refused.append((key, cand))
            continue
        _note_simplified(fit, cand, rmse, start_rmse)
        terms, consts = t_terms, t_consts
    if len(refused) >= 2:
        t_terms, t_consts = terms, consts
        for key, cand in refused:
            t_terms, t_consts = swap_term(t_terms, t_consts, key, cand, scales[key[0]][key[1]])
        t_terms, t_consts = refit_terms(t_terms, t_consts, *fit_xy, refit_evals)
        rmse, _ = terms_rmse_r2(t_terms, t_consts, x_val, y_val)
        if math.isfinite(rmse) and rmse <= allowed:
            for key, cand in refused:
                _note_simplified(fit_of_key[key], cand, rmse, start_rmse, jointly=True)
            terms, consts = t_terms, t_consts
    return terms, consts


def _note_simplified(fit, cand, rmse: float, start_rmse: float, jointly: bool = False) -> None:
    fit.note = (
        f"simplified {fit.function} -> {cand.function}{' jointly' if jointly else ''}: "
        f"validation RMSE {rmse:.3g} (was {start_rmse:.3g})"
    )
    fit.function, fit.r2 = cand.function, cand.r2


def box_points(xs: np.ndarray, seed: int, n: int = 2000) -> np.ndarray:
    """``n`` points drawn uniformly from the bounding box of the inputs ``xs (rows, d)``."""
    rng = np.random.default_rng(seed)  # a private generator: the caller's RNGs stay untouched
    return rng.uniform(xs.min(axis=0), xs.max(axis=0), size=(n, xs.shape[1]))


def defined_on_box(terms, consts, box, fit_xy, fit_of_key, refit_evals):
    """Replace singular functions (sqrt, log, 1/x, ...) that leave the formula undefined inside
    the inputs' range by each edge's best candidate defined on all reals.

    Training rows can miss the corners where, say, a ``sqrt`` argument turns negative; test rows
    then get NaN. Terms are tried one at a time, and only those whose removal makes fewer box
    points undefined; each swap is refitted. Returns (terms, consts), possibly still undefined
    somewhere when no defined candidate helps.
    """

    def undefined(ts, cs) -> int:
        return int((~np.isfinite(evaluate_terms(ts, cs, box)[0])).sum())

    bad = undefined(terms, consts)
    for term in [t for t in terms if not library_function(t.function).total]:
        if bad == 0:
            break
        if undefined([t for t in terms if t.key != term.key], consts) >= bad:
            continue  # not this term's doing
        fit = fit_of_key.get(term.key)
        totals = [c for c in fit.candidates if library_function(c.function).total] if fit else []
        safe = totals[0] if totals else None
        if safe is None:
            continue
        t_terms, t_consts = swap_term(terms, consts, term.key, safe, term.scale)
        t_terms, t_consts = refit_terms(t_terms, t_consts, *fit_xy, refit_evals)
        now = undefined(t_terms, t_consts)
        if now < bad:
            terms, consts, bad = t_terms, t_consts, now
            fit.note = (
                f"{fit.function} replaced by {safe.function}: undefined inside the data range"
            )
            fit.function, fit.r2 = safe.function, safe.r2
    return terms, consts
