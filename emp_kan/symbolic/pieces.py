"""Formulas read from a pruned KAN's additive structure: each piece solved as a sparse sum.

The pruned KAN says which inputs enter the law together (:mod:`emp_kan.kan.structure`). A piece
of one input is solved as a sparse sum of monomials and library functions
(:func:`~emp_kan.symbolic.sparse_sum.fit_sparse_sum`); a piece of two inputs by a sparse
regression over products of one-input terms (monomials up to degree 3 and the functions its
first-layer edges read as). Each piece is fitted to the data less the other pieces' values in
the network; the splines' errors leave the result when the pieces' sum is refitted as a whole
(:func:`~emp_kan.symbolic.refit.refit_floats`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
import torch

from emp_kan.kan import adapter
from emp_kan.kan.structure import Piece, additive_pieces, piece_values, split_separable
from emp_kan.symbolic.sparse_sum import (
    SparseSum,
    Term1D,
    fit_sparse_sum,
    information_criterion,
)

__all__ = ["PieceFit", "StructureReading", "read_structure"]

_MAX_PIECE_INPUTS = 2
_MAX_INTERACTION_TERMS = 6
_INTERACTION_DEGREE = 3
_RELATIVE_FLOOR = 1e-5


@dataclass
class PieceFit:
    """One piece's formula: ``predict (n, d) -> (n,)`` and its sympy form (floats unsnapped)."""

    piece: Piece
    expression: sp.Expr
    predict: Any
    family: str  # "polynomial", "function sum" or "interaction"


@dataclass
class StructureReading:
    """The pieces of a pruned KAN, each one's formula where it was solved (``fits``, aligned
    with ``pieces``) and, when every piece was, the formula they add up to (floats unsnapped)."""

    pieces: list[Piece]
    fits: list[PieceFit | None]
    expression: sp.Expr | None

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        return {
            "pieces": [
                dict(
                    p.to_dict(names),
                    formula=None if f is None else str(f.expression),
                    family=(None if f is None else f.family),
                )
                for p, f in zip(self.pieces, self.fits, strict=True)
            ],
            "separable": len(self.pieces) > 1,
        }


def _sum_fit(piece: Piece, found: SparseSum, symbol: sp.Symbol) -> PieceFit:
    column = piece.inputs[0]
    family = "function sum" if found.functions else "polynomial"
    return PieceFit(piece, found.sympy(symbol), lambda x: found.predict(x[:, column]), family)


def _edge_function_terms(
    model: Any, piece: Piece, x_fit: torch.Tensor, library: tuple[str, ...]
) -> dict[int, list[Term1D]]:
    """Per input of ``piece``: the library-function terms its first-layer edges read as
    (sparse sums of at most two terms fitted to each edge's curve on the fit rows)."""
    masks = [m.detach().cpu().numpy() for m in adapter.get_edge_masks(model)]
    pre, post = adapter.edge_samples(model, x_fit)[0]
    out: dict[int, list[Term1D]] = {i: [] for i in piece.inputs}
    n = x_fit.shape[0]
    split = max(1, n - n // 5)
    for node, column in itertools.product(range(masks[0].shape[0]), piece.inputs):
        if not masks[0][node, column]:
            continue
        u, v = pre[:, node, column], post[:, node, column]
        if float(np.std(v)) == 0.0:
            continue
        fits = fit_sparse_sum((u[:split], v[:split]), (u[split:], v[split:]), library, 2, 3, 1)
        for term in fits[0].terms if fits else ():
            if not term.power and term not in out[column]:
                out[column].append(term)
    return out


def _interaction_columns(
    piece: Piece, functions: dict[int, list[Term1D]]
) -> list[tuple[str, Any, Any]]:
    """``(name, values(x (n, d)) -> (n,), sympy(symbols))`` of the dictionary of a two-input
    piece: monomials ``x_i**p * x_j**q`` (``1 <= p + q <= 3``), each edge function alone and
    times the other input's powers up to 2, and products of the two inputs' functions."""
    i, j = piece.inputs
    out = []
    for p, q in itertools.product(range(_INTERACTION_DEGREE + 1), repeat=2):
        if 1 <= p + q <= _INTERACTION_DEGREE:
            out.append(
                (
                    f"x{i}^{p} x{j}^{q}",
                    lambda x, p=p, q=q: x[:, i] ** p * x[:, j] ** q,
                    lambda s, p=p, q=q: s[i] ** p * s[j] ** q,
                )
            )
    for column, other in ((i, j), (j, i)):
        for term in functions[column]:
            for q in range(3):
                out.append(
                    (
                        f"{term} x{other}^{q}",
                        lambda x, t=term, c=column, o=other, q=q: t.values(x[:, c]) * x[:, o] ** q,
                        lambda s, t=term, c=column, o=other, q=q: t.sympy(s[c]) * s[o] ** q,
                    )
                )
    for ti, tj in itertools.product(functions[i], functions[j]):
        out.append(
            (
                f"{ti} {tj}",
                lambda x, a=ti, b=tj: a.values(x[:, i]) * b.values(x[:, j]),
                lambda s, a=ti, b=tj: a.sympy(s[i]) * b.sympy(s[j]),
            )
        )
    return out


def _interaction_fit(
    piece: Piece,
    functions: dict[int, list[Term1D]],
    fit_rows: tuple[np.ndarray, np.ndarray],
    val_rows: tuple[np.ndarray, np.ndarray],
    symbols: Sequence[sp.Symbol],
) -> PieceFit | None:
    """Forward selection over :func:`_interaction_columns` (least squares on the fit rows), the
    size with the lowest information criterion on the validation rows; over monomials alone
    and with the edges' functions, the better of the two."""
    dictionaries = [{c: [] for c in piece.inputs}]
    if any(functions.values()):
        dictionaries.append(functions)
    found = [_selected(piece, d, fit_rows, val_rows, symbols) for d in dictionaries]
    found = [f for f in found if f is not None]
    return min(found, key=lambda f: f[0])[1] if found else None


def _selected(
    piece: Piece,
    functions: dict[int, list[Term1D]],
    fit_rows: tuple[np.ndarray, np.ndarray],
    val_rows: tuple[np.ndarray, np.ndarray],
    symbols: Sequence[sp.Symbol],
) -> tuple[float, PieceFit] | None:
    """Forward selection over ``functions``' :func:`_interaction_columns`: the criterion and
    fit of the best size."""
    (x, y), (xv, yv) = fit_rows, val_rows
    dictionary = _interaction_columns(piece, functions)
    with np.errstate(all="ignore"):
        columns = np.column_stack([values(x) for _, values, _ in dictionary])
        val_columns = np.column_stack([values(xv) for _, values, _ in dictionary])
    usable = np.isfinite(columns).all(axis=0) & np.isfinite(val_columns).all(axis=0)
    spread = float(np.std(yv))
    floor = _RELATIVE_FLOOR * spread if spread > 0 else 1e-300
    chosen: list[int] = []
    best: tuple[float, list[int], np.ndarray] | None = None
    while len(chosen) < _MAX_INTERACTION_TERMS:
        trial_best = None
        for k in np.flatnonzero(usable):
            if k in chosen:
                continue
            design = np.column_stack([np.ones(len(y)), columns[:, [*chosen, k]]])
            solution, *_ = np.linalg.lstsq(design, y, rcond=None)
            sse = float(np.sum((design @ solution - y) ** 2))
            if trial_best is None or sse < trial_best[0]:
                trial_best = (sse, int(k), solution)
        if trial_best is None:
            break
        chosen = [*chosen, trial_best[1]]
        solution = trial_best[2]
        val_design = np.column_stack([np.ones(len(yv)), val_columns[:, chosen]])
        rmse = float(np.sqrt(np.mean((val_design @ solution - yv) ** 2)))
        criterion = information_criterion(rmse, len(yv), 1 + 2 * len(chosen), floor)
        if best is None or criterion < best[0]:
            best = (criterion, list(chosen), solution)
    if best is None:
        return None
    criterion, picked, solution = best
    expression = sp.Float(float(solution[0])) + sum(
        sp.Float(float(c)) * dictionary[k][2](symbols)
        for c, k in zip(solution[1:], picked, strict=True)
    )

    def predict(rows: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = np.full(rows.shape[0], float(solution[0]))
            for c, k in zip(solution[1:], picked, strict=True):
                out = out + c * dictionary[k][1](rows)
        return out

    return criterion, PieceFit(piece, expression, predict, "interaction")


def read_structure(
    model: Any,
    fit_rows: tuple[torch.Tensor, torch.Tensor],
    val_rows: tuple[torch.Tensor, torch.Tensor],
    variables: Sequence[sp.Symbol],
    library: tuple[str, ...],
    solve: bool = True,
) -> StructureReading:
    """The pruned ``model``'s pieces and, where each has at most two inputs, a formula for each
    and their sum.

    Parameters
    ----------
    model : pykan MultKAN
        A pruned KAN of one output.
    fit_rows, val_rows : tuple of torch.Tensor
        ``(x (n, d), y (n, 1))`` rows to fit on and rows to choose on.
    variables : sequence of sympy.Symbol
        One per input column.
    library : tuple of str
    solve : bool
        False: the pieces only, no formulas.
    """
    masks = [m.detach().cpu().numpy() for m in adapter.get_edge_masks(model)]
    pieces, reference = split_separable(model, fit_rows[0], additive_pieces(masks))
    if not solve or not pieces or any(len(p.inputs) > _MAX_PIECE_INPUTS for p in pieces):
        return StructureReading(pieces, [None] * len(pieces), None)
    x, y = (t.detach().double().numpy() for t in fit_rows)
    xv, yv = (t.detach().double().numpy() for t in val_rows)
    y, yv = y[:, 0], yv[:, 0]
    values, constant = piece_values(model, fit_rows[0].double(), pieces, reference)
    val_values, val_constant = piece_values(model, val_rows[0].double(), pieces, reference)
    others = [values.sum(axis=1) - values[:, k] + constant for k in range(len(pieces))]
    val_others = [
        val_values.sum(axis=1) - val_values[:, k] + val_constant for k in range(len(pieces))
    ]
    functions = {
        p: _edge_function_terms(model, p, fit_rows[0], library)
        for p in pieces
        if len(p.inputs) == 2
    }
    fits: list[PieceFit | None] = [None] * len(pieces)
    for k, piece in enumerate(pieces):
        target, val_target = y - others[k], yv - val_others[k]
        if len(piece.inputs) == 1:
            column = piece.inputs[0]
            found = fit_sparse_sum(
                (x[:, column], target), (xv[:, column], val_target), library, top=1
            )
            fits[k] = _sum_fit(piece, found[0], variables[column]) if found else None
        else:
            fits[k] = _interaction_fit(
                piece, functions[piece], (x, target), (xv, val_target), variables
            )
        if fits[k] is None:
            return StructureReading(pieces, fits, None)
    expression = sum((f.expression for f in fits), sp.Integer(0))
    return StructureReading(pieces, fits, expression)
