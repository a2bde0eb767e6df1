"""A power law times one function of one input: ``y = C * prod_i x_i**a_i * f(a*x_j + b)**c``.

About one law in six in the Feynman list has this shape (``F*r*sin(theta)``,
``p_d*cos(theta)/(4*pi*epsilon*r**2)``, ``sigma/(epsilon*(chi + 1))``,
``n_0*exp(-x)``...). A sum-KAN models it as a square of sums, and the log route cannot take it
when ``f`` changes sign on the data (``sin(theta)`` for ``theta`` in [1, 5]), because then no
product of the inputs' signs explains the sign of ``y``.

In log space the law is linear in everything but ``(a, b)``::

    log|y| = sum_i a_i log|x_i| + c log|f(a*x_j + b)| + log|C|

so for each input ``j`` the pruned KAN kept and each library function ``f``, a grid over
``(a, b)`` is scored in closed form (the fixed columns are projected out once; the one column
that moves with ``(a, b)`` is a rank-one update), the best grid points are polished by
Nelder-Mead, and the sign of ``y`` is modelled as for the log route: the sign of ``f**c``
times a product of the other inputs' signs. The fits use the fit rows only; the candidates are
mapped to formulas of ``y`` whose constants snap on the validation rows, and they compete with
every other candidate in :func:`emp_kan.symbolic.choice.choose_formula`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emp_kan._runtime.memo import Memo, digest, recall
from emp_kan.data.split import Split
from emp_kan.symbolic.products.fit import fit_products
from emp_kan.symbolic.products.signed import (
    polish_in_y,
    product_expression,
    signed_product,
    snap_powers,
)
from emp_kan.symbolic.transform import formula_of_expression

__all__ = [
    "finished_fits",
    "product_formulas",
    "product_search",
    "product_search_ahead",
    "product_search_key",
    "signed_formulas",
]


def product_search(
    rows: Split, inputs: list[int], library: tuple[str, ...], top: int, progress: bool = False
) -> tuple[str, Any]:
    """The memo key of :func:`product_formulas`'s search and the search itself (a function of
    no arguments returning ``(signed fit, rmse)`` pairs, best first; ``progress`` shows its
    bar)."""
    fit_rows = rows.fit
    x = fit_rows["train_input"].double().numpy()
    y = fit_rows["train_label"].double().numpy()[:, 0]

    def search() -> list[tuple[Any, float]]:
        return finished_fits(fit_products(x, y, inputs, tuple(library), 2 * top, progress), x, y)

    return digest(x, y, list(inputs), list(library), top), search


def product_search_key(
    rows: Split, inputs: list[int], library: tuple[str, ...], top: int = 3
) -> str:
    """The memo key under which :func:`product_formulas` with these arguments keeps its
    search (the key :func:`product_search_ahead` returns), without searching."""
    return product_search(rows, inputs, library, top)[0]


def product_search_ahead(
    rows: Split,
    inputs: list[int],
    library: tuple[str, ...],
    top: int = 3,
    progress: bool = False,
) -> tuple[str, Any]:
    """What :func:`product_formulas` with these arguments will search, done now: ``(key,
    result)`` for :func:`emp_kan._runtime.memo.remember` (a forked child with time to spare
    runs it; ``progress`` shows its bar)."""
    key, search = product_search(rows, inputs, library, top, progress)
    return key, search()


def product_formulas(
    formula: Any,
    rows: Split,
    inputs: list[int],
    library: tuple[str, ...],
    top: int = 3,
    memo: Memo | None = None,
    progress: bool = False,
) -> list[Any]:
    """The best power-law-times-one-function readings of the data as formulas of ``y``.

    Parameters
    ----------
    formula : SymbolicFormula
        A formula of ``y`` in the user's variables (its variables and bookkeeping are reused).
    rows : Split
        The rows of ``y``: the fit rows search, the validation rows snap (and never fit).
    inputs : list of int
        Columns with a live edge in the pruned KAN.
    library : tuple of str
    top : int
    memo : Memo, optional
        Where a search on the same rows is kept (or pending in another process).
    progress : bool
        Show a tqdm bar over the search.

    Returns
    -------
    list of SymbolicFormula
        Constants snapped on the validation rows, errors measured on every split.
    """
    key, search = product_search(rows, inputs, library, top, progress)
    # The search reads only the data: in discover both methods ask for it on the same rows.
    polished = recall(memo, "products", key, search, keep=list, restore=list)
    return signed_formulas(formula, polished, rows, top)


def finished_fits(fits: list[Any], x: np.ndarray, y: np.ndarray) -> list[tuple[Any, float]]:
    """Log-space :class:`ProductFit` objects as ``(SignedProduct, rmse of y)`` pairs, best first:
    each given a sign model, polished on ``y (n,)`` over the rows ``x (n, d)`` and its powers
    snapped (fits no sign model explains are dropped)."""
    found = []
    for fit in fits:
        signed = signed_product(fit, x, y)
        if signed is not None:
            refitted, rmse = polish_in_y(signed, x, y)
            found.append(snap_powers(refitted, x, y, rmse))
    return sorted(found, key=lambda pair: pair[1])


def signed_formulas(
    formula: Any, polished: list[tuple[Any, float]], rows: Split, top: int
) -> list[Any]:
    """The first ``top`` distinct formulas of ``y`` among :func:`finished_fits`' ``polished``
    pairs, constants snapped on ``rows``' validation rows (``formula``'s variables and
    bookkeeping reused)."""
    out, seen = [], set()
    for signed, _ in polished:  # sin(t) and cos(t - pi/2) snap to one formula: list it once
        found = formula_of_expression(
            formula, product_expression(signed, formula.variables), rows, edges=[]
        )
        if str(found.expression) not in seen:
            seen.add(str(found.expression))
            out.append(found)
        if len(out) == top:
            break
    return out
