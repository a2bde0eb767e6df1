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
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
import torch
from tqdm.auto import tqdm

from emp_kan._runtime import threads
from emp_kan.data.formula_parse import as_expression
from emp_kan.data.problems import split_validation
from emp_kan.kan import adapter
from emp_kan.kan.training import check_dataset
from emp_kan.symbolic.edge_fit import EdgeCandidate, check_library, fit_edge
from emp_kan.symbolic.formula_terms import (
    Term,
    build_expression,
    canonical,
    evaluate_terms,
    refit_terms,
    swap_term,
)
from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.registry import library_function

log = logging.getLogger("emp_kan")

__all__ = [
    "EdgeFit",
    "SymbolicFormula",
    "evaluate_formula",
    "finish_expression",
    "fit_formula",
    "formula_complexity",
    "snap_constants",
]


@dataclass
class EdgeFit:
    """The symbolic function chosen for one edge (ids of the original, unpruned model)."""

    layer: int
    out_id: int
    in_id: int
    function: str
    r2: float  # held-out R^2 of the fit to the spline, when it was chosen
    candidates: list[EdgeCandidate]
    note: str = ""

    def latex(self, variable: str = "x") -> str:
        """The edge's function of ``variable`` (its input's name) in LaTeX."""
        x = sp.Symbol(variable)
        return sp.latex(library_function(self.function).sympy(x)) if self.function != "0" else "0"


UNDEFINED_WARNING = (
    "the formula is undefined at some points inside the range of the training inputs "
    "(a sqrt, log or 1/x of a negative or zero argument); check it before using it there"
)


_UNEXPLAINED = "the formula explains less than predicting the mean"


def unexplained_warning(test_r2: float) -> str:
    """The warning on a formula whose test R^2 is not above 0."""
    return (
        f"{_UNEXPLAINED} (test R^2 = {test_r2:.3g}); do not use it as a result: train "
        "longer, prune less, or widen the library"
    )


def is_expression_warning(warning: str, domain: bool = True) -> bool:
    """Whether ``warning`` is about one expression's fit (or, with ``domain``, its domain), not
    about how the symbolic stage ran: a formula rewritten into another expression drops it."""
    return (domain and warning == UNDEFINED_WARNING) or warning.startswith(_UNEXPLAINED)


@dataclass
class SymbolicFormula:
    """A formula found in a KAN, checked end to end.

    Attributes
    ----------
    expression : sympy.Expr
        In the variables ``variables`` (one output).
    variables : list of sympy.Symbol
    test_rmse, test_r2 : float
        Of the formula on the held-out test data.
    spline_test_rmse : float
        Of the (pruned) spline model before the symbolic stage, for comparison.
    complexity : int
        Number of nodes in the expression tree (sympy ``count_ops(visual=False)`` + symbols).
    edges : list of EdgeFit
    explains_data : bool
        False when the formula does worse than predicting the mean (test R^2 <= 0).
    """

    expression: Any
    variables: list[Any]
    test_rmse: float
    test_r2: float
    train_rmse: float
    spline_test_rmse: float
    complexity: int
    edges: list[EdgeFit]
    explains_data: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return str(self.expression)

    def sympy(self) -> Any:
        """The sympy expression."""
        return self.expression

    def latex(self) -> str:
        """LaTeX of the expression."""
        return sp.latex(self.expression)

    def lambdify(self):
        """A numpy function ``f(X) -> (n,)`` for ``X`` of shape ``(n, len(variables))``."""
        fn = sp.lambdify(self.variables, self.expression, "numpy")

        def evaluate(x: Any) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != len(self.variables):
                raise ValueError(
                    f"expected inputs of shape (n, {len(self.variables)}), got {x.shape}"
                )
            with np.errstate(all="ignore"):
                out = fn(*x.T)
            return np.broadcast_to(np.asarray(out, dtype=np.float64), (x.shape[0],)).copy()

        return evaluate

    def graph_attributes(
        self, input_names: Sequence[str] | None = None
    ) -> dict[tuple[int, int, int], dict[str, Any]]:
        """``{(layer, out_id, in_id): {"function", "latex", "r2"}}`` for :func:`to_networkx`.

        Edges out of the inputs are written in the input's name (``input_names``, default the
        formula's variables: ``sin(mass)``; names longer than 6 characters as ``x``); deeper
        edges in ``h``, a hidden node's value.
        """
        names = [str(v) for v in self.variables] if input_names is None else list(input_names)
        # Long names make labels that overlap their neighbours': those edges say x.
        names = [n if len(n) <= 6 and n.isidentifier() else "x" for n in names]
        return {
            (e.layer, e.out_id, e.in_id): {
                "function": e.function,
                "latex": e.latex(names[e.in_id] if e.layer == 0 else "h"),
                "r2": float(e.r2),
            }
            for e in self.edges
        }

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "formula": str(self.expression),
            "latex": self.latex(),
            "variables": [str(v) for v in self.variables],
            "test_rmse": _finite_or_none(self.test_rmse),
            "test_r2": _finite_or_none(self.test_r2),
            "train_rmse": _finite_or_none(self.train_rmse),
            "spline_test_rmse": _finite_or_none(self.spline_test_rmse),
            "complexity": self.complexity,
            "explains_data": self.explains_data,
            "seconds": self.seconds,
            "edges": [
                {
                    "layer": e.layer,
                    "out": e.out_id,
                    "in": e.in_id,
                    "function": e.function,
                    "r2": _finite_or_none(e.r2),
                    "note": e.note,
                }
                for e in self.edges
            ],
            "warnings": self.warnings,
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _fix_edge(model, layer: int, out: int, inp: int, name: str, params) -> None:
    """Fix an edge of the pykan model to a registry function (a user's through its torch form)."""
    entry = library_function(name)
    adapter.fix_symbolic_edge(
        model, layer, out, inp, name, params, torch_function=entry.torch, sympy_function=entry.sympy
    )


def _choose(
    model, layer, out, inp, cands: list[EdgeCandidate], fit_data
) -> tuple[EdgeCandidate, str]:
    best = cands[0]
    if best.function != "0":
        return best, ""
    alternatives = [c for c in cands if c.function != "0"]
    if not alternatives:
        return best, ""
    x_fit, y_fit = fit_data["train_input"], fit_data["train_label"]
    trial = adapter.clone_model(model)
    _fix_edge(trial, layer, out, inp, "0", (0.0, 0.0, 0.0, best.d))
    loss_const = adapter.rmse(trial, x_fit, y_fit)
    alt = alternatives[0]
    _fix_edge(trial, layer, out, inp, alt.function, (alt.a, alt.b, alt.c, alt.d))
    loss_alt = adapter.rmse(trial, x_fit, y_fit)
    if math.isfinite(loss_alt) and loss_const > 1.1 * loss_alt:
        return alt, (
            f"kept {alt.function} over a constant: the constant raised the training RMSE "
            f"from {loss_alt:.3g} to {loss_const:.3g}"
        )
    return best, "constant: removing the variation costs under 10% of the training RMSE"


def _fix_layer(model, layer, fits, fit_data, ids, progress_bar, library):
    samples = adapter.edge_samples(model, fit_data["train_input"])
    pre, post = samples[layer]
    numeric = adapter.numeric_edge_masks(model)[layer]
    chosen = []
    for out, inp in zip(*np.nonzero(numeric), strict=True):
        cands = fit_edge(pre[:, out, inp], post[:, out, inp], library)
        cand, note = _choose(model, layer, out, inp, cands, fit_data)
        _fix_edge(model, layer, out, inp, cand.function, (cand.a, cand.b, cand.c, cand.d))
        fits.append(
            EdgeFit(
                layer, ids[layer + 1][out], ids[layer][inp], cand.function, cand.r2, cands, note
            )
        )
        chosen.append((out, inp, cands))
        progress_bar.update(1)
    return chosen


def _refit(model, data, steps, seed) -> bool:
    """Let the remaining splines adapt to the edges just fixed; False (model unchanged) on failure.

    When only the last layer still has splines, the output is linear in their coefficients and
    one least-squares solve finds their best fit; otherwise pykan trains for ``steps`` LBFGS steps.
    """
    if steps <= 0:
        return True
    x, y = data["train_input"], data["train_label"]
    backup = adapter.clone_model(model)
    if not any(m.any() for m in adapter.numeric_edge_masks(model)[:-1]):
        before = adapter.rmse(model, x, y)
        after = adapter.rmse(model, x, y) if adapter.solve_last_layer_splines(model, x, y) else None
        if after is None or not math.isfinite(after):
            model.load_state_dict(backup.state_dict())
            return False
        if after > before:  # float32 rounding of an already optimal fit: keep what was there
            model.load_state_dict(backup.state_dict())
        return True
    try:
        adapter.fit(model, data, steps, 0.0, seed, update_grid=False)
    except Exception as exc:  # pykan raises assorted errors on NaN activations
        log.debug("symbolic refit failed: %s", exc)
        model.load_state_dict(backup.state_dict())
        return False
    if not math.isfinite(adapter.rmse(model, x, y)):
        model.load_state_dict(backup.state_dict())
        return False
    return True


def _replace_with_total(model, layer, chosen, fits, start) -> None:
    """Swap singular functions of a layer for the best candidate defined on all reals."""
    for (out, inp, cands), fit in zip(chosen, fits[start:], strict=True):
        if library_function(fit.function).total:
            continue
        safe = next((c for c in cands if library_function(c.function).total), None)
        if safe is None:
            continue
        _fix_edge(model, layer, out, inp, safe.function, (safe.a, safe.b, safe.c, safe.d))
        fit.function, fit.r2 = safe.function, safe.r2
        fit.note = "singular function replaced after the refit diverged"


def _extract_terms(model: Any) -> tuple[list[Term], list[np.ndarray], list[np.ndarray]]:
    """The fully symbolic model as terms, one constant per node and each node's scale.

    Constants and scales per layer have shape ``(out,)``.
    """
    numeric = adapter.numeric_edge_masks(model)
    if any(m.any() for m in numeric):
        raise ValueError("the model still has spline edges; fix every edge symbolically first")
    terms: list[Term] = []
    consts: list[np.ndarray] = []
    scales: list[np.ndarray] = []
    for layer, sym in enumerate(model.symbolic_fun):
        mask = sym.mask.detach().cpu().numpy().astype(bool)  # (out, in); '0' edges add d
        sub_s, sub_b, node_s, node_b = adapter.node_affines(model, layer)
        scale = node_s * sub_s
        const = node_s * sub_b + node_b
        for out, inp in zip(*np.nonzero(mask), strict=True):
            name, (a, b, c, d) = adapter.symbolic_edge(model, layer, out, inp)
            const[out] += scale[out] * d
            if name == "0":
                continue
            if name == "x":  # C * (a v + b) = (C a) v + C b
                const[out] += scale[out] * c * b
                terms.append(
                    Term(layer, out, inp, "x", 1.0, 0.0, scale[out] * c * a, float(scale[out]), d)
                )
            else:
                terms.append(
                    Term(layer, out, inp, name, a, b, scale[out] * c, float(scale[out]), d)
                )
        consts.append(const)
        scales.append(np.asarray(scale, dtype=np.float64))
    return [canonical(t, consts) for t in terms], consts, scales


def _numpy_xy(x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, d)`` and ``y (n,)`` as float64 arrays."""
    return (
        x.detach().cpu().numpy().astype(np.float64),
        y.detach().cpu().numpy().astype(np.float64)[:, 0],
    )


def _rmse_r2(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(RMSE, R^2) of predictions ``(n,)``; NaN when any prediction is not finite."""
    if not np.isfinite(pred).all():
        return math.nan, math.nan
    with np.errstate(over="ignore"):  # a wild candidate's error overflows to inf: it just loses
        mse = float(np.mean((pred - y) ** 2))
    var = float(np.var(y))
    r2 = 1.0 - mse / var if var > 0 else (1.0 if mse == 0 else -math.inf)
    return math.sqrt(mse), r2


def _terms_rmse_r2(terms, consts, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return _rmse_r2(evaluate_terms(terms, consts, x)[0], y)


# A term may go when the validation RMSE stays within 5% of the RMSE before any term went, or
# below 1e-4 of the labels' spread (float32 labels and spline fits carry no more than that).
DROP_REL_TOL = 0.05
DROP_ABS_TOL = 1e-4


def _allowed_rmse(start_rmse: float, y_val: np.ndarray) -> float:
    """The validation RMSE a removal or simplification may reach (see ``DROP_REL_TOL``)."""
    return max(start_rmse * (1 + DROP_REL_TOL), DROP_ABS_TOL * float(np.std(y_val)))


def _drop_terms(terms, consts, fit_xy, val_xy, fit_of_key, refit_evals, max_failures: int = 2):
    """Remove terms the formula does not need, least needed first; return (terms, consts).

    A term is tried by removing it and refitting the rest; the removal stays when the
    validation RMSE stays within the tolerance (``DROP_REL_TOL``, ``DROP_ABS_TOL``) of the
    formula before any removal. Terms are tried in order of the validation RMSE without them
    (no refit), and the pass stops after ``max_failures`` refused removals, so its cost is a
    few refits. Removed edges are recorded as constants in ``fit_of_key``.
    """
    x_val, y_val = val_xy
    start_rmse, _ = _terms_rmse_r2(terms, consts, x_val, y_val)
    allowed = _allowed_rmse(start_rmse, y_val)
    without = []
    for t in terms:
        rest = [u for u in terms if u.key != t.key]
        rmse, _ = _terms_rmse_r2(rest, consts, x_val, y_val)
        without.append((rmse if math.isfinite(rmse) else math.inf, t.key))
    failures = 0
    for _, key in sorted(without):
        if failures >= max_failures or len(terms) <= 1:
            break
        trial = [u for u in terms if u.key != key]
        t_terms, t_consts = refit_terms(trial, consts, *fit_xy, refit_evals)
        rmse, _ = _terms_rmse_r2(t_terms, t_consts, x_val, y_val)
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


def _chain_search(
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
                rmse, _ = _terms_rmse_r2(t_terms, t_consts, *val_xy)
                if math.isfinite(rmse):
                    screened.append((rmse, len(screened), t_terms, t_consts, c1, c2))
        screened.sort(key=lambda entry: entry[:2])
        best = None
        for _, _, t_terms, t_consts, c1, c2 in screened[:finalists]:
            t_terms, t_consts = refit_terms(t_terms, t_consts, *fit_xy, refit_evals)
            rmse, r2 = _terms_rmse_r2(t_terms, t_consts, *val_xy)
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


# At equal complexity, algebraic functions before transcendental ones: the order in which the
# simplicity pass prefers them.
_PREFERENCE = (
    "x",
    "x^2",
    "x^3",
    "x^4",
    "1/x",
    "1/x^2",
    "sqrt",
    "abs",
    "exp",
    "log",
    "sin",
    "cos",
    "tanh",
    "tan",
)


def _simplicity(function: str) -> tuple[int, int]:
    """Sort key of a library function: (complexity, place in :data:`_PREFERENCE`)."""
    rank = _PREFERENCE.index(function) if function in _PREFERENCE else len(_PREFERENCE)
    return library_function(function).complexity, rank


def _simplify_edges(
    terms, consts, fit_xy, val_xy, fit_of_key, scales, refit_evals, max_failures: int = 3
):
    """Swap edges to simpler library functions the formula can do without; return
    (terms, consts).

    Occam's razor with the term-dropping pass's tolerance: an edge whose chosen function has a
    simpler candidate (lower complexity, e.g. ``x`` for a ``sqrt`` fitted to a nearly straight
    spline; at equal complexity, earlier in :data:`_PREFERENCE`, e.g. ``x^2`` for a ``cos``
    whose small frequency imitates a parabola) takes it when, after a refit, the validation
    RMSE stays within ``DROP_REL_TOL`` of the formula before any swap (or under
    ``DROP_ABS_TOL`` of the labels' spread). Per-edge fits cannot see this: a slightly curved
    spline often only compensates another edge's error, and a parabola and a slow cosine fit a
    spline equally well. Swaps refused one at a time are then tried together once (two slow
    cosines can stand for a product only together: ``(a+b)^2 - (a-b)^2``). The pass stops after
    ``max_failures`` refused swaps.
    """
    x_val, y_val = val_xy
    start_rmse, _ = _terms_rmse_r2(terms, consts, x_val, y_val)
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
        rmse, _ = _terms_rmse_r2(t_terms, t_consts, x_val, y_val)
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
        rmse, _ = _terms_rmse_r2(t_terms, t_consts, x_val, y_val)
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


def _box_points(xs: np.ndarray, seed: int, n: int = 2000) -> np.ndarray:
    """``n`` points drawn uniformly from the bounding box of the inputs ``xs (rows, d)``."""
    rng = np.random.default_rng(seed)  # a private generator: the caller's RNGs stay untouched
    return rng.uniform(xs.min(axis=0), xs.max(axis=0), size=(n, xs.shape[1]))


def _defined_on_box(terms, consts, box, fit_xy, fit_of_key, refit_evals):
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


def _lambdify_by_name(expr, variables, params=()):
    """``expr`` as a numpy function of ``variables`` (matched by name) and then ``params``."""
    names = [str(v) for v in variables]
    symbols = [sp.Symbol(n) for n in names]
    expr = as_expression(expr)
    expr = expr.xreplace({s: sp.Symbol(s.name) for s in expr.free_symbols if s.name in names})
    return sp.lambdify(symbols + list(params), expr, "numpy")


def _predict(fn, xs: np.ndarray, n: int, params=()) -> np.ndarray:
    """Real predictions ``(n,)`` of a lambdified formula; NaN where complex or undefined."""
    with np.errstate(all="ignore"):
        pred = np.broadcast_to(np.asarray(fn(*xs.T, *params), dtype=np.complex128), (n,))
    if np.abs(pred.imag).max(initial=0.0) > 1e-9:
        return np.full(n, np.nan)
    return pred.real


def evaluate_formula(expr, variables, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(RMSE, R^2) of ``expr`` on inputs ``x (n, d)`` and labels ``y (n, 1)``.

    ``variables`` (symbols or names) are matched to the columns of ``x`` by name, so formulas
    from other sources (pykan's, the truth) evaluate alike. NaN for non-finite predictions.
    """
    xs, ys = _numpy_xy(x, y)
    return _rmse_r2(_predict(_lambdify_by_name(expr, variables), xs, ys.size), ys)


_SNAP_UNITS = (sp.pi, 1 / sp.pi, 1 / sp.sqrt(sp.pi), 1 / sp.sqrt(2 * sp.pi), sp.sqrt(2))


def _snap_candidates(value: float) -> list[Any]:
    out = [sp.Integer(0), sp.Integer(round(value))]
    frac = Fraction(value).limit_denominator(12)
    out.append(sp.Rational(frac.numerator, frac.denominator))
    # Small numerators over larger denominators: 1/16 and 1/32 are common in physics.
    frac = Fraction(value).limit_denominator(64)
    if 0 < abs(frac.numerator) <= 4:
        out.append(sp.Rational(frac.numerator, frac.denominator))
    # Rational multiples of pi, and simple ones (p/q with p <= 4, q <= 16) of the normalisers
    # 1/pi, 1/sqrt(pi), 1/sqrt(2*pi), sqrt(2): 3/(8*pi), not 13/(5*sqrt(pi)).
    for unit in _SNAP_UNITS:
        unit_frac = Fraction(value / float(unit)).limit_denominator(12 if unit == sp.pi else 16)
        if unit_frac != 0 and (unit == sp.pi or abs(unit_frac.numerator) <= 4):
            out.append(sp.Rational(unit_frac.numerator, unit_frac.denominator) * unit)
    seen, unique = set(), []
    for c in out:
        if c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


def snap_constants(expr, variables, x, y, rel_tol: float = 1e-3):
    """Replace floats by 0, integers, small rationals or rational multiples of pi.

    One float at a time, largest first; a replacement is kept when the RMSE on ``(x, y)`` stays
    within ``rel_tol`` (relative) of the unsnapped expression's RMSE, or within 1e-6 of the
    labels' standard deviation, whichever is larger.
    """
    floats = sorted(expr.atoms(sp.Float), key=lambda f: -abs(float(f)))
    if not floats:
        return expr
    # One lambdified function with every float as an argument: trials cost no sympy work.
    params = [sp.Dummy(f"c{k}") for k in range(len(floats))]
    fn = _lambdify_by_name(expr.xreplace(dict(zip(floats, params, strict=True))), variables, params)
    xs, ys = _numpy_xy(x, y)
    values = [float(f) for f in floats]
    base_rmse, _ = _rmse_r2(_predict(fn, xs, ys.size, values), ys)
    if not math.isfinite(base_rmse):
        return expr
    # float32 data carry about 7 digits: changes below 1e-6 of the label spread cost nothing.
    spread = float(ys.std()) if ys.size > 1 else 1.0
    budget = max(base_rmse * (1 + rel_tol), base_rmse + 1e-6 * spread)
    snapped = {}
    for k, f in enumerate(floats):
        for cand in _snap_candidates(values[k]):
            trial = values[:k] + [float(cand)] + values[k + 1 :]
            rmse, _ = _rmse_r2(_predict(fn, xs, ys.size, trial), ys)
            if math.isfinite(rmse) and rmse <= budget:
                values, snapped[f] = trial, cand
                break
    return expr.xreplace(snapped)


# Cheap, predictable rewrites. sympy's ``simplify`` is not used: its trigonometric pass took
# 69 s on a 4-edge formula with float constants (Feynman I.6.20a) and has no time bound.
def _powsimp(e):
    return sp.powsimp(e, combine="all")


def _logcombine(e):
    return sp.logcombine(e, force=True)


def _expand(e):
    return sp.expand(e, deep=False)


_REWRITES = (sp.cancel, sp.together, sp.factor_terms, _powsimp, _logcombine, _expand)
_EXPANDING = (sp.cancel, sp.together, _expand)  # these multiply powers of sums out
_MAX_EXPANDED_POWER = 6


def _expansion_risk(expr) -> bool:
    """Whether multiplying ``expr`` out could run without bound: a power of a sum above the
    6th, whole or not (``(...)**(189/2)`` is ``sqrt(...)**189`` to ``cancel``)."""
    return any(
        p.base.is_Add and p.exp.is_Rational and abs(p.exp) > _MAX_EXPANDED_POWER
        for p in expr.atoms(sp.Pow)
    )


def _simplify(expr):
    """Apply each rewrite in turn, keeping its result when it has fewer operations.

    Cancels common factors, combines fractions, powers and logs, pulls out common terms and
    multiplies out products where that is shorter. Expressions of 60 operations or more are
    returned as they are (such formulas are not read anyway, and the rewrites grow costly).
    """
    best_ops = sp.count_ops(expr)
    if best_ops >= 60:
        return expr
    # Multiplying out a high power of a sum has no time bound: a log route's formula mapped back
    # as (a + b + c)**75 held a bench worker in sp.cancel for half an hour and 9 GB.
    risky = _expansion_risk(expr)
    # logcombine asks sympy whether every factor is real, and on a log inside another function
    # (tanh(log(...) + ...)) that question multiplied out powers for half an hour (bench eq. 79).
    logs = expr.atoms(sp.log)
    combinable = len(logs) >= 2 and all(
        isinstance(f, (sp.log, sp.exp)) for f in expr.atoms(sp.Function)
    )
    for rewrite in _REWRITES:
        if (risky and rewrite in _EXPANDING) or (rewrite is _logcombine and not combinable):
            continue
        try:
            candidate = rewrite(expr)
        except Exception:  # sympy can fail on odd expressions; the current one is still right
            continue
        ops = sp.count_ops(candidate)
        if ops < best_ops:
            expr, best_ops = candidate, ops
    return expr


def _unit_power_bases(expr):
    """Pull the largest coefficient out of every power of a sum: ``4336*(0.0152 u + 0.0304 w)**2``
    becomes ``1.0*(1.0 u + 2.0 w)**2``, whose numbers snap (the same value, another form)."""

    def unit(power):
        base, exponent = power.args
        coefficient = max((abs(term.as_coeff_Mul()[0]) for term in base.args), key=float)
        if not (coefficient.is_Float and 0 < float(coefficient) != 1.0):
            return power
        return coefficient**exponent * sp.expand(base / coefficient) ** exponent

    return expr.replace(lambda e: e.is_Pow and e.args[0].is_Add and e.args[1].is_Number, unit)


def formula_complexity(expr) -> int:
    """Nodes of the expression tree: sympy's operation count plus symbols and numbers."""
    return int(sp.count_ops(expr, visual=False)) + len(expr.atoms(sp.Symbol, sp.Number))


def finish_expression(expr, symbols, x: torch.Tensor, y: torch.Tensor):
    """Snap, simplify, and snap again on the rows ``x (n, d)``, ``y (n, 1)`` (validation rows):
    simplification exposes new numbers (expanded products). Last, roots of one degree are
    taken together where that is shorter and gives the same values on those rows."""
    expr = snap_constants(_unit_power_bases(expr), symbols, x, y)
    expr = _simplify(expr)
    expr = snap_constants(expr, symbols, x, y)
    merged = _common_roots(expr)
    if formula_complexity(merged) < formula_complexity(expr) and _same_values(
        merged, expr, symbols, x
    ):
        return merged
    return expr


def _common_roots(expr):
    """Each product's roots of one degree as one root: ``sqrt(a)*sqrt(b)/sqrt(c)`` becomes
    ``sqrt(a*b/c)``. sympy does not do this for real symbols, since it is true only where the
    bases are not negative: :func:`finish_expression` checks it on the rows."""

    def merge(product):
        kept, roots = [], {}
        for factor in product.args:
            if factor.is_Pow and factor.exp.is_Rational and not factor.exp.is_Integer:
                roots.setdefault(factor.exp.q, []).append(factor)
            else:
                kept.append(factor)
        for degree, factors in roots.items():
            if len(factors) < 2:
                kept += factors
                continue
            inside = sp.Mul(*(f.base ** (f.exp * degree) for f in factors))
            kept.append(sp.Pow(inside, sp.Rational(1, degree)))
        return sp.Mul(*kept)

    try:
        return expr.replace(lambda e: e.is_Mul, merge)
    except Exception:  # noqa: BLE001 - sympy can fail on odd expressions; keep the one we have
        return expr


def _same_values(one, other, symbols, x: torch.Tensor) -> bool:
    """Whether two expressions give the same finite values on the rows ``x (n, d)``."""
    xs = x.detach().double().numpy()
    a = _predict(_lambdify_by_name(one, symbols), xs, len(xs))
    b = _predict(_lambdify_by_name(other, symbols), xs, len(xs))
    return bool(
        np.all(np.isfinite(a))
        and np.all(np.isfinite(b))
        and np.allclose(a, b, rtol=1e-10, atol=0.0)
    )


@threads.single_threaded
def fit_formula(
    source: Any,
    dataset: Mapping[str, torch.Tensor],
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
) -> SymbolicFormula:
    """Turn the surviving splines of a pykan model into a checked sympy formula.

    Parameters
    ----------
    source : kan.MultKAN or PruneResult
        The (pruned) model; not modified. One output.
    dataset : dict of torch.Tensor
        pykan dataset; training rows fit (the last 20% validate), test rows only report.
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
        decides on (:func:`emp_kan.data.problems.split_validation`).

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
    symbols = [sp.Symbol(n, real=True) for n in names]

    fit_data, val = split_validation(dict(dataset), validation)
    spline_test_rmse = adapter.rmse(model, dataset["test_input"], dataset["test_label"])
    spline_val_rmse = adapter.rmse(model, val["x"], val["y"])
    model = adapter.clone_model(model)
    model.symbolic_enabled = True
    warnings: list[str] = []
    fits: list[EdgeFit] = []
    n_edges = int(sum(int(m.sum()) for m in adapter.numeric_edge_masks(model)))
    bar = tqdm(total=n_edges, desc="symbolic fit", disable=not progress, leave=False)

    with threads.preserved_global_rng(seed):
        n_layers = len(widths) - 1
        for layer in range(n_layers):
            start = len(fits)
            chosen = _fix_layer(model, layer, fits, fit_data, ids, bar, library)
            if layer == n_layers - 1:
                break  # nothing left to adapt: the formula-level refit follows
            if not _refit(model, fit_data, retrain_steps, seed + layer):
                _replace_with_total(model, layer, chosen, fits, start)
                if not _refit(model, fit_data, retrain_steps, seed + layer):
                    warnings.append(f"retraining after fixing layer {layer} failed; skipped it")
        bar.close()

    x_fit, y_fit = _numpy_xy(fit_data["train_input"], fit_data["train_label"])
    x_val, y_val = _numpy_xy(val["x"], val["y"])
    terms, consts, scales = _extract_terms(model)
    terms, consts = refit_terms(terms, consts, x_fit, y_fit, refit_evals)
    trial_evals = max(10, refit_evals // 3)  # the shorter refits after a swap, drop or repair
    val_rmse, val_r2 = _terms_rmse_r2(terms, consts, x_val, y_val)
    fit_of_key = {  # positions in the pruned model -> the edge's fit
        (f.layer, ids[f.layer + 1].index(f.out_id), ids[f.layer].index(f.in_id)): f for f in fits
    }
    trials = 0
    good_enough = min(2.0 * spline_val_rmse, math.sqrt(1e-3) * float(np.std(y_val)))
    if not (math.isfinite(val_rmse) and val_rmse <= good_enough):
        for key, fit in sorted(fit_of_key.items(), key=lambda item: item[1].r2):
            for cand in fit.candidates[:top_k]:
                if trials >= max_swaps or val_rmse <= good_enough:
                    break
                if cand.function == fit.function:
                    continue
                trials += 1
                t_terms, t_consts = swap_term(terms, consts, key, cand, scales[key[0]][key[1]])
                t_terms, t_consts = refit_terms(t_terms, t_consts, x_fit, y_fit, trial_evals)
                t_rmse, t_r2 = _terms_rmse_r2(t_terms, t_consts, x_val, y_val)
                if math.isfinite(t_rmse) and (not math.isfinite(val_rmse) or t_rmse < val_rmse):
                    terms, consts, val_rmse, val_r2 = t_terms, t_consts, t_rmse, t_r2
                    fit.function, fit.r2 = cand.function, cand.r2
                    fit.note = "chosen end to end over the per-edge best"
        log.info("end-to-end search: %d trials, validation R^2 %.6f", trials, val_r2)
        if val_rmse > good_enough:
            terms, consts, val_rmse, val_r2 = _chain_search(
                terms,
                consts,
                fit_of_key,
                scales,
                (x_fit, y_fit),
                (x_val, y_val),
                top_k,
                trial_evals,
                val_rmse,
                val_r2,
            )
    if math.isfinite(val_rmse):
        terms, consts = _simplify_edges(
            terms, consts, (x_fit, y_fit), (x_val, y_val), fit_of_key, scales, trial_evals
        )
        terms, consts = _drop_terms(
            terms, consts, (x_fit, y_fit), (x_val, y_val), fit_of_key, trial_evals
        )
    box = _box_points(np.vstack([x_fit, x_val]), seed)  # every training row, as arrays
    terms, consts = _defined_on_box(terms, consts, box, (x_fit, y_fit), fit_of_key, trial_evals)
    if not np.isfinite(evaluate_terms(terms, consts, box)[0]).all():
        warnings.append(UNDEFINED_WARNING)
    expr = build_expression(terms, consts, symbols)[0]

    expr = finish_expression(expr, symbols, val["x"], val["y"])
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
        spline_test_rmse=spline_test_rmse,
        complexity=formula_complexity(expr),
        edges=fits,
        explains_data=explains,
        seconds=time.perf_counter() - start_time,
        warnings=warnings,
    )
