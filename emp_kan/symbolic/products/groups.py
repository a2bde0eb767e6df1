"""A pruned log-space KAN read as a power law times one function of one monomial group.

On the log route the KAN models ``log|y|`` over ``z_i = log|x_i|``. A law
``y = C * prod_i x_i**a_i * f(prod_k x_k**p_k)`` is there ``sum_i a_i z_i + g(sum_k p_k z_k)``,
whose gradient in ``z`` is ``a + g'(h) * p`` at every row: the network's gradients, less their
mean, all lie along ``p``. The leading direction of the centred gradients, scaled to small
whole numbers, is the group the KAN found (``v**2/c**2`` in ``m0/sqrt(1 - v**2/c**2)``,
``g*m*x/(T*k_b)`` in ``n_0*exp(-g*m*x/(T*k_b))``). The KAN's edges, each fitted alone, cannot
say this: the function acts on their sum.

The group and the inputs come from the pruned KAN; the constants of ``f(a*z + b)**c`` and the
power law are then fitted to the data on the fit rows, as the product search fits them for the
arguments it enumerates (:func:`~emp_kan.symbolic.products.grid.best_fit`), and ``f`` is the
library function that fits best.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from emp_kan.symbolic.products.fit import log_space_rows, plausible
from emp_kan.symbolic.products.forms import ProductFit, product_functions
from emp_kan.symbolic.products.grid import best_fit, grid_score

__all__ = ["group_arguments", "group_direction", "group_fits"]


_POWER_LAW = 0.02  # centred gradients' RMS below this share of the mean's norm: no group


_ONE_GROUP = 0.5  # second singular value over the first above this: more than one group


_IN_GROUP = 0.15  # a component below this share of the largest is not in the group


_MAX_MEMBERS = 6  # the group's largest components: 5**6 whole-number vectors to compare


_ANGLE = 0.9  # cosine between the direction and a whole-number vector tried as the group


_CLOSEST = 3  # whole-number vectors tried per direction


_FULL_FITS = 8  # (argument, function) pairs fitted in full after the grid's coarse score


_MIN_ROWS = 8


def group_direction(gradients: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | None:
    """The direction ``p (k,)`` (unit length, largest component positive) along which the
    gradients ``(n, k)`` of ``log|y|`` over ``log|x|`` vary, each row weighted by ``weights
    (n,)`` (default alike), or None when they barely vary (a power law) or vary along more
    than one direction.

    >>> import numpy as np
    >>> h = np.linspace(0.1, 2.0, 50)
    >>> g = np.column_stack([np.ones(50), -1 / h, 2 / h])
    >>> np.round(group_direction(g) * np.sqrt(5), 6) + 0.0
    array([ 0., -1.,  2.])
    """
    weights = np.ones(len(gradients)) if weights is None else np.asarray(weights, dtype=float)
    usable = np.isfinite(gradients).all(axis=1) & np.isfinite(weights) & (weights > 0)
    gradients, weights = gradients[usable], weights[usable]
    if gradients.shape[0] < _MIN_ROWS or gradients.shape[1] == 0:
        return None
    total = float(weights.sum())
    mean = weights @ gradients / total
    centred = (gradients - mean) * np.sqrt(weights / total)[:, None]
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    if not singular[0] > _POWER_LAW * max(float(np.linalg.norm(mean)), 1e-12):
        return None
    if len(singular) > 1 and singular[1] > _ONE_GROUP * singular[0]:
        return None
    direction = vt[0]
    return direction if direction[np.argmax(np.abs(direction))] > 0 else -direction


def group_arguments(direction: np.ndarray, inputs: Sequence[int]) -> list[tuple]:
    """Monomial arguments ``((column, power), ...)`` for a group ``direction (k,)`` over the
    columns ``inputs``: the whole-number vectors (powers -2..2, no common divisor) closest in
    angle to the direction, at most three within ``_ANGLE``, each with its reciprocal, its
    square and the square's reciprocal.

    The KAN's splines are only roughly right where the law is hard to fit, so its direction is
    too: ``m0/sqrt(1 - v**2/c**2)`` gives ``(0.86, -0.52)`` for ``(v, c)``, not ``(1, -1)``.
    The fits of every argument decide.

    >>> group_arguments(np.array([0.0, 0.7071, -0.7071]), [4, 5, 6])[:4]
    [((5, 1), (6, -1)), ((5, -1), (6, 1)), ((5, 2), (6, -2)), ((5, -2), (6, 2))]
    """
    scaled = direction / np.max(np.abs(direction))
    members = np.argsort(-np.abs(scaled))[:_MAX_MEMBERS]
    members = np.sort(members[np.abs(scaled[members]) >= _IN_GROUP])
    unit = scaled[members] / np.linalg.norm(scaled[members])
    vectors = np.array(list(itertools.product(range(-2, 3), repeat=len(members))))
    vectors = vectors[np.gcd.reduce(np.abs(vectors), axis=1) == 1]
    cosine = vectors @ unit / np.linalg.norm(vectors, axis=1)
    order = np.argsort(-cosine, kind="stable")
    chosen = [vectors[k] for k in order[:_CLOSEST] if cosine[k] >= _ANGLE]
    out = []
    for powers in chosen:
        for multiple in (1, -1, 2, -2):
            argument = tuple(
                (inputs[m], int(p) * multiple) for m, p in zip(members, powers, strict=True) if p
            )
            out.append(argument)
    return out


def group_fits(
    x: np.ndarray,
    y: np.ndarray,
    arguments: Sequence[tuple],
    inputs: Sequence[int],
    library: tuple[str, ...],
    top: int = 4,
) -> list[ProductFit]:
    """The ``top`` best fits ``C * prod_i |x_i|**a_i * f(a*z + b)**c`` of ``y (n,)`` over the
    fit rows ``x (n, d)``, ``z`` each of ``arguments`` and ``f`` each function the product
    search tries, scored on the grid's coarse points and the best few fitted in full; the power
    law is over ``inputs`` (an argument of one input has no power of its own, as in
    :func:`~emp_kan.symbolic.products.fit.fit_products`).

    Returns
    -------
    list of ProductFit
        Best first by log-space RMSE, one per (argument, function).
    """
    rows = log_space_rows(x, y)
    if rows is None:
        return []
    x, projection = rows
    power_inputs = [i for i in inputs if not (x[:, i] == 0).any()]
    scored = []
    for argument in arguments:
        if any((x[:, k] == 0).any() for k, p in argument if p < 0):
            continue
        alone = argument[0][0] if len(argument) == 1 else None
        powers = [i for i in power_inputs if i != alone]
        projected = projection(powers)
        for function in product_functions(library):
            score = grid_score(function, argument, x, projected)
            if math.isfinite(score):
                scored.append((score, function, argument, projected, powers))
    scored.sort(key=lambda entry: entry[0])
    fits = []
    for _, function, argument, projected, powers in scored[:_FULL_FITS]:
        fit = best_fit(function, argument, x, projected, powers)
        if fit is not None and math.isfinite(fit.log_rmse) and plausible(fit, x):
            fits.append(fit)
    return sorted(fits, key=lambda f: f.log_rmse)[:top]
