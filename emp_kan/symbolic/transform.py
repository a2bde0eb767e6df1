"""Output and input transforms: fit ``log|y|`` over ``log|x_i|`` (or over ``x_i``: the log-y
route) and map the formula back; for one input, library functions fitted to a route's data.

Products, ratios and powers (about half of the Feynman list) are sums in log space, which a
KAN models with straight edges: ``q1/(4*pi*epsilon*r**2)`` becomes
``X_q1 - X_epsilon - 2*X_r - log(4*pi)``. The sign that the logs drop is carried by a sign
model fitted on the training rows: ``sign(y) = s0 * prod_i sign(x_i)**p_i`` with ``p_i`` in
{0, 1}. Mapping back puts ``x_i / |x_i|`` in for every ``p_i = 1``, so that an odd power
``sign(x)*|x|**3`` reads ``x**3`` and an even one ``|x|**2`` reads ``x**2``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
import torch

from emp_kan.symbolic.edge_fit import fit_edge
from emp_kan.symbolic.expression import evaluate_formula, expansion_risk, formula_complexity
from emp_kan.symbolic.formula import is_expression_warning, unexplained_warning
from emp_kan.symbolic.registry import library_function
from emp_kan.symbolic.uncertainty import finish_within_errors

if TYPE_CHECKING:
    from emp_kan.data.split import Split

__all__ = [
    "LABEL_TRANSFORMS",
    "LogTransform",
    "direct_formulas",
    "fit_log_transform",
    "formula_in_original_space",
    "formula_of_expression",
    "label_transform_formulas",
    "power_law_formula",
]

_MAX_MIXED_SIGN_INPUTS = 10  # 2**10 sign models to try
_SIGN_AGREEMENT = 0.99  # share of training rows whose sign the model must explain


@dataclass(frozen=True)
class LogTransform:
    """``log|y| = f(log|x_0|, ..., log|x_{n-1}|)``, with the sign of ``y`` modelled apart.

    Attributes
    ----------
    input_signs : tuple of int
        Per input: +1 (positive on the data), -1 (negative), 0 (both signs).
    output_sign : int
        ``s0`` in ``sign(y) = s0 * prod sign(x_i)**p_i``.
    parity : tuple of int
        ``p_i``: 1 where the sign of ``y`` follows the sign of input ``i``.
    log_inputs : bool
        Whether the inputs are logged too (the "log" route) or kept as given ("log-y": for
        ``exp(f(x))`` and Gaussians, whose log is a plain function of ``x``).
    """

    input_signs: tuple[int, ...]
    output_sign: int
    parity: tuple[int, ...]
    log_inputs: bool = True  # False: log|y| over the inputs as given (the "log-y" route)

    def apply(self, dataset: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The pykan dataset in this route's space: labels (``*_label``, ``"y"``) by
        ``log|.|``, and inputs (``*_input``, ``"x"``) too when ``log_inputs``."""

        def is_input(key: str) -> bool:
            return key == "x" or key.endswith("_input")

        return {
            key: value if is_input(key) and not self.log_inputs else torch.log(torch.abs(value))
            for key, value in dataset.items()
        }

    def to_original(self, expr: Any, symbols: list[Any]) -> Any:
        """The formula ``expr`` of ``log|y|`` in ``symbols`` (which stand for ``log|x_i|``, or
        for ``x_i`` without ``log_inputs``) as a formula of ``y`` in ``x_i``."""
        log_of = {}
        for s, sign in zip(symbols, self.input_signs, strict=True):
            if not self.log_inputs:
                break
            log_of[s] = sp.log(s) if sign > 0 else sp.log(-s) if sign < 0 else sp.log(sp.Abs(s))
        exponent = expr.xreplace(log_of)
        if not expansion_risk(exponent):  # multiplied out, its terms split into factors of y
            exponent = sp.expand(exponent)
        body = sp.expand_power_exp(sp.exp(exponent))
        body = sp.powsimp(body, combine="exp")
        for s, p in zip(symbols, self.parity, strict=True):
            if p:
                body = body * s / sp.Abs(s)
        return self.output_sign * body

    def sign(self, x: torch.Tensor) -> torch.Tensor:
        """The sign model's ``sign(y) (n, 1)`` for inputs ``x (n, d)``."""
        mask = torch.tensor(self.parity, dtype=torch.bool)
        signs = (
            torch.sign(x[:, mask]).prod(dim=1, keepdim=True)
            if mask.any()
            else (torch.ones(x.shape[0], 1, dtype=x.dtype))
        )
        return self.output_sign * signs

    def to_label(self, log_prediction: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``y (n, 1)`` from a prediction of ``log|y| (n, 1)`` and the inputs ``x (n, d)``."""
        return self.sign(x) * torch.exp(log_prediction)


def _sign_model(
    x_signs: np.ndarray, y_signs: np.ndarray, agreement_needed: float = _SIGN_AGREEMENT
) -> tuple[int, tuple[int, ...]] | None:
    """``(s0, parity)`` that explains the sign of ``y (n,)`` from ``x_signs (n, d)`` on at
    least ``agreement_needed`` of the rows, preferring the fewest inputs; None when no model
    does."""
    n, d = x_signs.shape
    mixed = [i for i in range(d) if (x_signs[:, i] > 0).any() and (x_signs[:, i] < 0).any()]
    if len(mixed) > _MAX_MIXED_SIGN_INPUTS:
        return None
    best = None
    for size in range(len(mixed) + 1):
        for chosen in itertools.combinations(mixed, size):
            product = np.prod(x_signs[:, list(chosen)], axis=1) if chosen else np.ones(n)
            for s0 in (1, -1):
                agreement = float(np.mean(s0 * product == y_signs))
                if agreement >= agreement_needed and (best is None or agreement > best[0]):
                    best = (agreement, s0, chosen)
        if best is not None:
            break
    if best is None:
        return None
    _, s0, chosen = best
    return s0, tuple(int(i in chosen) for i in range(d))


def fit_log_transform(
    x: torch.Tensor, y: torch.Tensor, log_inputs: bool = True
) -> tuple[LogTransform | None, str]:
    """The log transform for training rows ``x (n, d)``, ``y (n, 1)``, or why there is none.

    Returns
    -------
    transform : LogTransform or None
    reason : str
        Empty when a transform is returned; else what rules it out (a zero input or label,
        a sign of ``y`` that no product of the inputs' signs explains).
    """
    xs = x.detach().double().numpy()
    ys = y.detach().double().numpy().reshape(-1)
    if ys.size == 0:
        return None, "no training rows"
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        return None, "non-finite values in the training rows"
    if (ys == 0).any():
        return None, "the label is 0 on some training rows (log|y| is undefined there)"
    zero_inputs = [i for i in range(xs.shape[1]) if (xs[:, i] == 0).any()]
    if zero_inputs and log_inputs:
        return None, f"input {zero_inputs[0]} is 0 on some training rows"
    x_signs = np.sign(xs)
    model = _sign_model(x_signs, np.sign(ys))
    if model is None:
        return None, "the sign of the label is not a product of the inputs' signs"
    input_signs = tuple(
        1 if (column > 0).all() else -1 if (column < 0).all() else 0 for column in x_signs.T
    )
    s0, parity = model
    return LogTransform(input_signs, s0, parity, log_inputs), ""


def formula_in_original_space(formula: Any, transform: LogTransform, rows: Split) -> Any:
    """``formula`` (a SymbolicFormula of ``log|y|``) as a SymbolicFormula of ``y``.

    Its constants are snapped again on the validation rows of ``rows`` (``exp`` of a
    log-space constant such as ``-log(4*pi)`` is a number that snaps only here), and its test
    and training errors are those of ``y``, so that it competes with formulas fitted to ``y``.
    """
    expr = transform.to_original(formula.expression, formula.variables)
    return formula_of_expression(formula, expr, rows)


def power_law_formula(
    formula: Any,
    transform: LogTransform,
    inputs: list[int],
    rows: Split,
) -> Any:
    """The straight-edge reading of a log-route KAN: ``y = C * prod_i x_i**a_i`` over the
    inputs the pruned KAN still uses.

    Every path from input ``i`` is taken as straight, so that ``log|y|`` is linear in the
    ``log|x_i|``; ``a_i`` and ``log|C|`` are fitted by least squares on the fit rows (not the
    validation rows), and the exponents snap to simple rationals where the validation rows
    allow it. Exact for every product, ratio and power of the inputs; for other laws its
    validation error tells the choice to pass it over.

    Parameters
    ----------
    formula : SymbolicFormula
        The log route's formula (its variables and bookkeeping are reused).
    transform : LogTransform
    inputs : list of int
        Columns of the inputs with a live edge in the pruned log-route KAN.
    rows : Split
        The rows of ``y`` (not logged).
    """
    fit = rows.fit
    logged = transform.apply({"x": fit["train_input"], "y": fit["train_label"]})
    x_log = logged["x"].double().numpy()[:, inputs]
    y_log = logged["y"].double().numpy().reshape(-1)
    design = np.column_stack([x_log, np.ones(len(y_log))])
    coefficients, *_ = np.linalg.lstsq(design, y_log, rcond=None)
    symbols = formula.variables
    log_expr = sum(
        (sp.Float(a) * symbols[i] for a, i in zip(coefficients[:-1], inputs, strict=True)),
        sp.Float(coefficients[-1]),
    )
    expr = transform.to_original(log_expr, symbols)
    return formula_of_expression(formula, expr, rows, edges=[])


def formula_of_expression(
    formula: Any,
    expr: Any,
    rows: Split,
    edges: list | None = None,
) -> Any:
    """``formula`` with ``expr`` (of ``y``) as its expression: whole floats made integers,
    constants snapped on the validation rows (:func:`finished_expression`), errors and
    complexity measured again (:func:`formula_with_expression`)."""
    expr = finished_expression(expr, formula.variables, rows)
    return formula_with_expression(formula, expr, rows, edges)


def finished_expression(expr: Any, variables: Any, rows: Split) -> Any:
    """``expr`` (of ``y``) with whole floats made integers and its constants snapped on the
    validation rows within their error bars
    (:func:`~emp_kan.symbolic.uncertainty.finish_within_errors`)."""
    return _integral_floats(finish_within_errors(_integral_floats(expr), variables, rows))


def formula_with_expression(formula: Any, expr: Any, rows: Split, edges: list | None = None) -> Any:
    """``formula`` with the finished ``expr`` (of ``y``) as its expression, its errors on the
    rows, complexity and warnings measured again (``edges``: as :func:`formula_of_expression`)."""
    from dataclasses import replace

    dataset = rows.dataset
    test_rmse, test_r2 = evaluate_formula(
        expr, formula.variables, dataset["test_input"], dataset["test_label"]
    )
    train_rmse, _ = evaluate_formula(
        expr, formula.variables, dataset["train_input"], dataset["train_label"]
    )
    explains = math.isfinite(test_r2) and test_r2 > 0.0
    # The fit warning is this expression's own; so is the domain warning when the expression
    # is a new one (``edges=[]``: read off the data, not the route's edges). An exact power law
    # read off a route whose own formula failed carried "do not use it as a result".
    warnings = [
        w for w in formula.warnings if not is_expression_warning(w, domain=edges is not None)
    ]
    if not explains:
        warnings.append(unexplained_warning(test_r2))
    return replace(
        formula,
        expression=expr,
        test_rmse=test_rmse,
        test_r2=test_r2,
        train_rmse=train_rmse,
        complexity=formula_complexity(expr),
        explains_data=explains,
        warnings=warnings,
        edges=formula.edges if edges is None else edges,
    )


def _integral_floats(expr: Any) -> Any:
    """``x**2.0`` -> ``x**2``: exponents that came out of the log space as whole floats."""
    # beyond 2**53 a float is whole without being an integer anyone wrote
    whole = {
        f: sp.Integer(int(f))
        for f in expr.atoms(sp.Float)
        if abs(float(f)) < 2.0**53 and float(f) == int(float(f))
    }
    return expr.xreplace(whole)


def _edge_expression(cand: Any, symbol: Any) -> Any:
    """``c * f(a * symbol + b) + d`` of an edge-fit candidate, as sympy."""
    inner = sp.Float(cand.a) * symbol + sp.Float(cand.b)
    return sp.Float(cand.c) * library_function(cand.function).sympy(inner) + sp.Float(cand.d)


def direct_formulas(
    formula: Any,
    transform: LogTransform | None,
    route_rows: Split,
    rows: Split,
    library: Any,
    top: int = 3,
) -> list[Any]:
    """For one input: the ``top`` library functions ``c * f(a * x + b) + d`` fitted straight to
    the route's data, as formulas of ``y``.

    A two-layer KAN of one variable splits the law into an inner and an outer function in any of
    infinitely many ways (``exp(sin(x))`` as ``g(h)`` with ``h`` any reparametrisation of
    ``sin``), which the per-edge fits then chase. Where the route has made the law a single
    library function (``log|y| = sin(x)``), fitting it to the data directly is exact.
    """

    fit = route_rows.fit
    x = fit["train_input"].double().numpy()[:, 0]
    y = fit["train_label"].double().numpy()[:, 0]
    symbol = formula.variables[0]
    out = []
    for cand in fit_edge(x, y, library)[:top]:
        if cand.function == "0":
            continue
        expr = _edge_expression(cand, symbol)
        if transform is not None:
            expr = transform.to_original(expr, formula.variables)
        out.append(formula_of_expression(formula, expr, rows, edges=[]))
    return out


# name: (applies to labels y (n,), forward g(y), inverse as sympy of g's formula u and the
# sign s of y). One-variable laws whose outer function is not exp: sqrt(x**2 + 1) is
# sqrt of a library function of x, log(cos(x) + 2) a log of one, 1/(1 + x**2) a reciprocal,
# and Lorentz's factors of a speed ratio x, 1/sqrt(1 - x**2), x/sqrt(1 - x**2) and
# (1 + x)/sqrt(1 - x**2), reciprocal square roots of 1 - x**2, 1/x**2 - 1 and 2/(1 + x) - 1.
LABEL_TRANSFORMS = {
    "square": (
        lambda y: bool((y > 0).all() or (y < 0).all()),
        np.square,
        lambda u, s: s * sp.sqrt(u),
    ),
    "inverse-square": (
        lambda y: bool((y > 0).all() or (y < 0).all()),
        lambda y: 1.0 / np.square(y),
        lambda u, s: s / sp.sqrt(u),
    ),
    "exp": (lambda y: bool(np.abs(y).max() < 30.0), np.exp, lambda u, s: sp.log(u)),
    "reciprocal": (lambda y: bool((y != 0).all()), np.reciprocal, lambda u, s: 1 / u),
}


def label_transform_formulas(
    formula: Any, rows: Split, library: Any, top: int = 2
) -> dict[str, Any]:
    """For one input: library functions ``g(y) = c * f(a * x + b) + d`` fitted on the fit rows
    for ``g`` each of :data:`LABEL_TRANSFORMS` that applies, mapped back to formulas of ``y``.

    Returns
    -------
    dict of str to SymbolicFormula
        Keyed ``"<transform>-direct-<k>"``; constants snapped on the validation rows.
    """

    fit = rows.fit
    x = fit["train_input"].double().numpy()[:, 0]
    y = fit["train_label"].double().numpy()[:, 0]
    symbol = formula.variables[0]
    sign = 1 if (y > 0).all() else -1
    out = {}
    for name, (applies, forward, inverse) in LABEL_TRANSFORMS.items():
        if not applies(y):
            continue
        with np.errstate(all="ignore"):
            target = forward(y)
        if not np.isfinite(target).all():
            continue
        candidates = [c for c in fit_edge(x, target, library) if c.function != "0"][:top]
        for k, cand in enumerate(candidates):
            out[f"{name}-direct-{k + 1}"] = formula_of_expression(
                formula,
                inverse(_edge_expression(cand, symbol), sign),
                rows,
                edges=[],
            )
    return out
