"""From surviving splines to a verified, simplified sympy formula.

The stage, for a (pruned) pykan model and its data:

1. **Per edge**: sample the edge's activation on the training inputs and fit every library
   function (:func:`emp_kan.edge_fit.fit_edge`); keep the best ``top_k`` candidates.
2. **Layer by layer**: fix the first layer's edges, let the remaining splines adapt, then fit
   the next layer from the adapted model. When only the last layer's splines remain (always,
   for two-layer KANs) their best coefficients and output biases come from one linear least
   squares; deeper models get ``retrain_steps`` pykan LBFGS steps on everything left. A
   constant is accepted for a clearly varying edge only if the end-to-end training loss with the
   constant is within 10% of the loss with the best non-constant candidate.
3. **Refit** every parameter of the composed formula against the training rows by
   Levenberg-Marquardt with the exact Jacobian
   (:mod:`emp_kan.symbolic.formula_terms`), in a canonical
   form with one scale per edge and one constant per node (``C * f(a * v + b)`` summed into
   ``D``), which removes pykan's redundant affine parameters.
4. **End-to-end choice**: while the formula's validation RMSE is above twice the spline model's
   (or its R^2 is below 0.999), try each edge's other candidates, worst-fitting edges first,
   keeping a swap only if the validation RMSE drops after a refit; at most ``max_swaps``
   trials. Then **drop** terms the formula does not need: least needed first, each removal
   refitted and kept while the validation RMSE stays within 5% of what it was (or under 1e-4
   of the labels' spread); two refusals end the pass.
5. **Check the domain**: on 2000 points drawn from the bounding box of the training inputs,
   a singular function (sqrt, log, 1/x, ...) that leaves the formula undefined is replaced by
   the edge's best candidate defined on all reals; if that does not help, a warning says so.
6. **Compose** the sympy expression in the user's variable names, pull the largest coefficient
   out of every power of a sum, **snap** constants to simple values (0, integers, small
   rationals, rational multiples of pi) where the validation RMSE grows by at most 0.1%, and
   **simplify**.
7. **Verify** on the held-out test data: RMSE, R^2 and a complexity count. A formula that
   explains less than predicting the mean is flagged (``explains_data=False``).

The validation split (the last 20% of the training rows) chooses; the test split only reports.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch
from tqdm.auto import tqdm

from emp_kan._runtime import threads
from emp_kan._runtime.memo import Memo
from emp_kan.data.split import Split
from emp_kan.kan import adapter
from emp_kan.kan.training import check_dataset
from emp_kan.symbolic.edge_fit import check_library
from emp_kan.symbolic.expression import (
    evaluate_formula,
    formula_complexity,
    numpy_xy,
)
from emp_kan.symbolic.formula import (
    UNDEFINED_WARNING,
    EdgeFit,
    SymbolicFormula,
    unexplained_warning,
)
from emp_kan.symbolic.formula_terms import (
    build_expression,
    evaluate_terms,
    refit_terms,
    swap_term,
)
from emp_kan.symbolic.layers import extract_terms, fix_layer, refit_model, replace_with_total
from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.term_search import (
    box_points,
    chain_search,
    defined_on_box,
    drop_terms,
    simplify_edges,
    terms_rmse_r2,
)
from emp_kan.symbolic.uncertainty import finish_within_errors

log = logging.getLogger("emp_kan")

__all__ = ["fit_formula"]


@threads.single_threaded
def fit_formula(
    source: Any,
    dataset: Mapping[str, torch.Tensor] | Split,
    *,
    variables: Sequence[str] | None = None,
    library: Sequence[str] = DEFAULT_LIBRARY,
    retrain_steps: int = 10,
    refit_evals: int = 50,
    top_k: int = 3,
    max_swaps: int = 8,
    seed: int = 0,
    progress: bool = False,
    validation: float = 0.2,
    memo: Memo | None = None,
) -> SymbolicFormula:
    """Turn the surviving splines of a pykan model into a checked sympy formula.

    Parameters
    ----------
    source : kan.MultKAN or PruneResult
        The (pruned) model; not modified. One output.
    dataset : dict of torch.Tensor or Split
        pykan dataset; training rows fit (the last ``validation`` share of them, or a
        :class:`~emp_kan.data.split.Split`'s own validation rows, decide), test rows only
        report.
    variables : sequence of str, optional
        Names of the inputs (default ``x0, x1, ...``).
    library : sequence of str
        Function names (see :data:`emp_kan.edge_fit.DEFAULT_LIBRARY`); ``"0"`` is the constant.
    retrain_steps : int
        pykan LBFGS steps after fixing a layer while more than one layer of splines remains;
        with only the last layer left, an exact least-squares solve replaces them. ``0`` turns
        all retraining between layers off.
    refit_evals : int
        Function evaluations per parameter in each least-squares refit of the formula.
    top_k : int
        Candidates per edge considered in the end-to-end search.
    max_swaps : int
        Bound on end-to-end trials.
    seed : int
    progress : bool
        Show a tqdm bar over edges.
    validation : float
        Share of the training rows (the last ones) that choose; the same rows the round loop
        decides on (:class:`~emp_kan.data.split.Split`). Ignored for a Split.
    memo : Memo, optional
        Results to share with other calls on the same rows (``discover`` passes one to both
        methods, so that a refit both reach identically is done once).

    Returns
    -------
    SymbolicFormula

    Raises
    ------
    ValueError
        Unknown library names (the valid ones are listed), a model with no live edge, more
        than one output, bad variable names, or a bad dataset.
    """
    start_time = time.perf_counter()
    model, ids, symbols, library = _checked_source(source, dataset, variables, library)
    rows = Split.of(dataset, validation)
    val = rows.validation
    spline_test_rmse = adapter.rmse(model, rows.test["x"], rows.test["y"])
    spline_val_rmse = adapter.rmse(model, val["x"], val["y"])
    model, fits, warnings = _fixed_model(
        model, rows.fit, ids, library, retrain_steps, seed, progress, memo
    )
    budget = (top_k, max_swaps, refit_evals)
    terms, consts = _terms(model, fits, ids, rows, spline_val_rmse, budget, seed, warnings)
    expr = build_expression(terms, consts, symbols)[0]
    expr = finish_within_errors(expr, symbols, rows)
    formula = _checked_formula(expr, symbols, rows.dataset, fits, warnings)
    formula.spline_test_rmse = spline_test_rmse
    formula.seconds = time.perf_counter() - start_time
    return formula


def _terms(
    model: Any,
    fits: list[EdgeFit],
    ids: list[list[int]],
    rows: Split,
    spline_val_rmse: float,
    budget: tuple[int, int, int],
    seed: int,
    warnings: list[str],
) -> tuple[list, list]:
    """The searched terms and constants of the fixed model, kept defined on the box of the
    training rows (a warning is added where they are not)."""
    top_k, max_swaps, refit_evals = budget
    xy = (
        numpy_xy(rows.fit["train_input"], rows.fit["train_label"]),
        numpy_xy(rows.validation["x"], rows.validation["y"]),
    )
    terms, consts, fit_of_key = _searched_terms(
        model, fits, ids, xy, spline_val_rmse, top_k, max_swaps, refit_evals
    )
    box = box_points(np.vstack([xy[0][0], xy[1][0]]), seed)  # every training row
    trial_evals = max(10, refit_evals // 3)
    terms, consts = defined_on_box(terms, consts, box, xy[0], fit_of_key, trial_evals)
    if not np.isfinite(evaluate_terms(terms, consts, box)[0]).all():
        warnings.append(UNDEFINED_WARNING)
    return terms, consts


def _checked_source(
    source: Any,
    dataset: Mapping[str, torch.Tensor] | Split,
    variables: Sequence[str] | None,
    library: Sequence[str],
) -> tuple[Any, list[list[int]], list[sp.Symbol], tuple[str, ...]]:
    """The model, its node ids, the inputs' symbols and the library, or ValueError."""
    dataset = dataset.dataset if isinstance(dataset, Split) else dataset
    library = check_library(library)
    model = source.model if hasattr(source, "node_ids") else source
    adapter.check_model(model)
    widths = adapter.widths(model)
    check_dataset(dataset, widths[0], widths[-1])
    if widths[-1] != 1:
        raise ValueError(f"fit_formula handles one output; the model has {widths[-1]}")
    if not any(bool(m.any()) for m in adapter.get_edge_masks(model)):
        raise ValueError("the model has no live edge: there is nothing to turn into a formula")
    ids = source.node_ids if hasattr(source, "node_ids") else [list(range(w)) for w in widths]
    # Inputs are never removed structurally, so the model's inputs are the original ones.
    names = [f"x{i}" for i in range(widths[0])] if variables is None else list(map(str, variables))
    if len(names) != widths[0] or len(set(names)) != len(names):
        raise ValueError(f"variables must be {widths[0]} distinct names, got {names}")
    return model, ids, [sp.Symbol(n, real=True) for n in names], library


def _fixed_model(
    model: Any,
    fit_data: Mapping[str, torch.Tensor],
    ids: list[list[int]],
    library: tuple[str, ...],
    retrain_steps: int,
    seed: int,
    progress: bool,
    memo: Memo | None,
) -> tuple[Any, list[EdgeFit], list[str]]:
    """A copy of ``model`` with every live edge fixed to a library function, layer by layer
    (refit between layers); the per-edge fits and the warnings so far."""
    model = adapter.clone_model(model)
    model.symbolic_enabled = True
    warnings: list[str] = []
    fits: list[EdgeFit] = []
    n_edges = int(sum(int(m.sum()) for m in adapter.numeric_edge_masks(model)))
    bar = tqdm(total=n_edges, desc="symbolic fit", disable=not progress, leave=False)
    with threads.preserved_global_rng(seed):
        n_layers = len(ids) - 1
        for layer in range(n_layers):
            start = len(fits)
            chosen = fix_layer(model, layer, fits, fit_data, ids, bar, library)
            if layer == n_layers - 1:
                break  # nothing left to adapt: the formula-level refit follows
            if not refit_model(model, fit_data, retrain_steps, seed + layer, memo):
                replace_with_total(model, layer, chosen, fits, start)
                if not refit_model(model, fit_data, retrain_steps, seed + layer, memo):
                    warnings.append(f"retraining after fixing layer {layer} failed; skipped it")
        bar.close()
    return model, fits, warnings


def _searched_terms(
    model: Any,
    fits: list[EdgeFit],
    ids: list[list[int]],
    rows: tuple,
    spline_val_rmse: float,
    top_k: int,
    max_swaps: int,
    refit_evals: int,
) -> tuple[list, list, dict]:
    """The fixed model's terms refit to the fit rows, then improved on the validation rows:
    other candidates per edge, linked compositions, simpler functions, fewer terms. Returns
    the terms, their constants and the edge fit of each term's position."""
    (x_fit, y_fit), (x_val, y_val) = rows
    terms, consts, scales = extract_terms(model)
    terms, consts = refit_terms(terms, consts, x_fit, y_fit, refit_evals)
    trial_evals = max(10, refit_evals // 3)  # the shorter refits after a swap, drop or repair
    val_rmse, val_r2 = terms_rmse_r2(terms, consts, x_val, y_val)
    fit_of_key = {  # positions in the pruned model -> the edge's fit
        (f.layer, ids[f.layer + 1].index(f.out_id), ids[f.layer].index(f.in_id)): f for f in fits
    }
    good_enough = min(2.0 * spline_val_rmse, math.sqrt(1e-3) * float(np.std(y_val)))
    if not (math.isfinite(val_rmse) and val_rmse <= good_enough):
        found = _swapped(
            terms,
            consts,
            fit_of_key,
            scales,
            rows,
            top_k,
            max_swaps,
            trial_evals,
            (val_rmse, val_r2),
            good_enough,
        )
        terms, consts, val_rmse, val_r2 = found
        if val_rmse > good_enough:
            terms, consts, val_rmse, val_r2 = chain_search(
                terms,
                consts,
                fit_of_key,
                scales,
                rows[0],
                rows[1],
                top_k,
                trial_evals,
                val_rmse,
                val_r2,
            )
    if math.isfinite(val_rmse):
        terms, consts = simplify_edges(
            terms, consts, rows[0], rows[1], fit_of_key, scales, trial_evals
        )
        terms, consts = drop_terms(terms, consts, rows[0], rows[1], fit_of_key, trial_evals)
    return terms, consts, fit_of_key


def _swapped(
    terms,
    consts,
    fit_of_key,
    scales,
    rows,
    top_k,
    max_swaps,
    trial_evals,
    start: tuple[float, float],
    good_enough: float,
) -> tuple:
    """Each edge's other candidates tried end to end (the worst-fitting edges first), kept
    where the refit formula does better on the validation rows: ``(terms, consts, val_rmse,
    val_r2)``."""
    (x_fit, y_fit), (x_val, y_val) = rows
    val_rmse, val_r2 = start
    trials = 0
    for key, fit in sorted(fit_of_key.items(), key=lambda item: item[1].r2):
        for cand in fit.candidates[:top_k]:
            if trials >= max_swaps or val_rmse <= good_enough:
                break
            if cand.function == fit.function:
                continue
            trials += 1
            t_terms, t_consts = swap_term(terms, consts, key, cand, scales[key[0]][key[1]])
            t_terms, t_consts = refit_terms(t_terms, t_consts, x_fit, y_fit, trial_evals)
            t_rmse, t_r2 = terms_rmse_r2(t_terms, t_consts, x_val, y_val)
            if math.isfinite(t_rmse) and (not math.isfinite(val_rmse) or t_rmse < val_rmse):
                terms, consts, val_rmse, val_r2 = t_terms, t_consts, t_rmse, t_r2
                fit.function, fit.r2 = cand.function, cand.r2
                fit.note = "chosen end to end over the per-edge best"
    log.info("end-to-end search: %d trials, validation R^2 %.6f", trials, val_r2)
    return terms, consts, val_rmse, val_r2


def _checked_formula(
    expr: Any,
    symbols: list,
    dataset: Mapping[str, torch.Tensor],
    fits: list[EdgeFit],
    warnings: list[str],
) -> SymbolicFormula:
    """The formula with its metrics on the training and test rows, warned about where it
    explains less than the mean."""
    test_rmse, test_r2 = evaluate_formula(
        expr, symbols, dataset["test_input"], dataset["test_label"]
    )
    train_rmse, _ = evaluate_formula(expr, symbols, dataset["train_input"], dataset["train_label"])
    explains = math.isfinite(test_r2) and test_r2 > 0.0
    if not explains:
        warnings.append(unexplained_warning(test_r2))
    for w in warnings:
        log.warning(w)
    return SymbolicFormula(
        expression=expr,
        variables=symbols,
        test_rmse=test_rmse,
        test_r2=test_r2,
        train_rmse=train_rmse,
        spline_test_rmse=math.nan,
        complexity=formula_complexity(expr),
        edges=fits,
        explains_data=explains,
        seconds=0.0,
        warnings=warnings,
    )
