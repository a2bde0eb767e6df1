"""Fixing a pruned KAN's splines layer by layer: each live edge gets its best library
function, the model is refit between layers, and the fixed edges are read as formula terms."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from emp_kan._runtime.memo import Memo
from emp_kan.kan import adapter
from emp_kan.kan.least_squares import solve_last_layer_splines
from emp_kan.symbolic.edge_fit import EdgeCandidate, fit_edge
from emp_kan.symbolic.formula import EdgeFit
from emp_kan.symbolic.formula_terms import (
    Term,
    canonical,
)
from emp_kan.symbolic.registry import library_function

log = logging.getLogger("emp_kan")

__all__ = ["extract_terms", "fix_layer", "refit_model", "replace_with_total"]


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


def fix_layer(model, layer, fits, fit_data, ids, progress_bar, library):
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


def refit_model(model, data, steps, seed, memo: Memo | None = None) -> bool:
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
        after = adapter.rmse(model, x, y) if solve_last_layer_splines(model, x, y) else None
        if after is None or not math.isfinite(after):
            model.load_state_dict(backup.state_dict())
            return False
        if after > before:  # float32 rounding of an already optimal fit: keep what was there
            model.load_state_dict(backup.state_dict())
        return True
    try:
        adapter.fit(model, data, steps, 0.0, seed, update_grid=False, memo=memo)
    except Exception as exc:  # pykan raises assorted errors on NaN activations
        log.debug("symbolic refit failed: %s", exc)
        model.load_state_dict(backup.state_dict())
        return False
    if not math.isfinite(adapter.rmse(model, x, y)):
        model.load_state_dict(backup.state_dict())
        return False
    return True


def replace_with_total(model, layer, chosen, fits, start) -> None:
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


def extract_terms(model: Any) -> tuple[list[Term], list[np.ndarray], list[np.ndarray]]:
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
