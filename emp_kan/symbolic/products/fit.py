"""The product search in log space: for each input and library function, the best
``(a, b)`` and powers, monomial arguments scored exhaustively or grown greedily."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from emp_kan.symbolic.products.forms import ProductFit, product_functions
from emp_kan.symbolic.products.grid import Projected, best_fit, grid_score

__all__ = ["fit_products", "linearised", "log_space_rows", "plausible"]


_MIN_ROWS = 8


_MAX_POWER = 8.0  # |c| beyond this marks a degenerate fit


_MIN_ARGUMENT_SWING = 0.05  # f's argument must move at least this much over the rows


_ASYMPTOTIC = {"cosh": 6.0, "tanh": 6.0, "exp(x)-1": 10.0}  # |u| beyond: f is its asymptote


_EXHAUSTIVE_INPUTS = 6  # up to here every monomial argument is scored, beyond it greedily


_SQUARES_INPUTS = 4  # up to here the argument's powers may be +-2 as well (theta**2/sigma**2)


_GROWTH_GAIN = 0.8  # an input joins the argument when it cuts the log-space RMSE by 20%


_WHOLE_POWER = 0.05  # a power this close to a whole number marks an input outside the argument


def fit_products(
    x: np.ndarray,
    y: np.ndarray,
    inputs: list[int],
    library: tuple[str, ...],
    top: int = 3,
    progress: bool = False,
) -> list[ProductFit]:
    """The ``top`` best power-law-times-one-function fits of ``y (n,)`` over ``x (n, d)``.

    Every input is tried as the function's argument with every function; then each
    function's best argument grows greedily into a monomial (``exp(-g*m*x/(T*k_b))``): one
    more input to the power +1 or -1 at a time, while that cuts the log-space RMSE by 20%.
    Up to six inputs every monomial argument is scored as well, and again over the inputs
    the best fit leaves outside its whole powers (:func:`_argument_inputs`), where squares
    fit in the budget (``(omega**2/omega_0**2 - 1)**-2``).

    Parameters
    ----------
    x : ndarray (n, d)
        Fit rows (not the validation rows).
    y : ndarray (n,)
    inputs : list of int
        Columns that may appear.
    library : tuple of str
        Library names; see :func:`product_functions` for which are searched.
    top : int
    progress : bool
        Show a tqdm bar over the (argument, function) searches (on 50,000 rows they take
        about ten seconds).

    Returns
    -------
    list of ProductFit
        Best first by log-space RMSE; empty when ``y`` is 0 on the rows or too few remain.
    """
    rows = log_space_rows(x, y)
    if rows is None:
        return []
    x, projection = rows
    power_inputs = [i for i in inputs if not (x[:, i] == 0).any()]

    projected = projection(power_inputs)
    functions = product_functions(library)
    exhaustive = len(inputs) <= _EXHAUSTIVE_INPUTS
    bar = tqdm(
        total=len(functions) * (len(inputs) + 1 + exhaustive),
        desc="product search",
        disable=not progress,
        leave=False,
    )
    fits: list[ProductFit] = []
    for j in inputs:
        # f of one input: that input has no power of its own (x**e * sin(a*x + b) imitates
        # sin(a'*x + b')**c too well over a short stretch); a monomial argument's inputs may.
        others = [i for i in power_inputs if i != j]
        alone = projection(others)
        for function in functions:
            fit = best_fit(function, ((j, 1),), x, alone, others)
            if fit is not None and math.isfinite(fit.log_rmse):
                fits.append(fit)
            # With one input (a law of one dimensionless group) there is no other power:
            # x/(exp(x) - 1) needs x's own, and the choice weighs the imitations' complexity.
            if len(inputs) == 1 and function != "x" and j in power_inputs:
                fit = best_fit(function, ((j, 1),), x, projected, power_inputs)
                if fit is not None and math.isfinite(fit.log_rmse):
                    fits.append(fit)
            bar.update()
    fits.sort(key=lambda f: f.log_rmse)
    seeds = {}
    for fit in fits:  # each function's best argument: the seed its monomial grows from
        seeds.setdefault(fit.function, fit)
    grown = []
    for fit in seeds.values():
        grown.append(_grow(fit, x, projected, inputs, power_inputs))
        bar.update()
    bar.update(len(functions) - len(seeds))
    if exhaustive:
        for function in functions:
            grown += _exhaustive(function, x, projected, inputs, power_inputs)
            bar.update()
    narrowed = _argument_inputs(min(fits + grown, key=lambda f: f.log_rmse), inputs) if fits else []
    if 2 <= len(narrowed) <= _EXHAUSTIVE_INPUTS and len(narrowed) < len(inputs):
        bar.total += len(functions)
        for function in functions:
            grown += _exhaustive(function, x, projected, narrowed, power_inputs)
            bar.update()
    bar.close()
    fits = [f for f in fits + grown if plausible(f, x)]
    # each (argument, function) once, with its best fit
    best: dict[tuple[tuple[tuple[int, int], ...], str], ProductFit] = {}
    for f in sorted(fits, key=lambda f: f.log_rmse):
        best.setdefault((f.argument, f.function), f)
    return list(best.values())[:top]


def _exhaustive(
    function: str,
    x: np.ndarray,
    projected: Projected,
    inputs: list[int],
    power_inputs: list[int],
) -> list[ProductFit]:
    """The best two arguments of ``function`` among all monomials of two or more inputs with
    powers -1, 0 or +1 (and +-2 for up to four inputs, five for ``x``:
    ``(1 - v**2/c**2)**(-1/2)``), scored on a coarse grid, then fitted in full.

    Greedy growth misses arguments whose parts explain nothing alone (no one factor of
    ``g*m*x/(T*k_b)`` in ``exp(-g*m*x/(T*k_b))`` does); the ``3**6`` monomials of six inputs
    cost about a second.
    """
    usable_inputs = [k for k in inputs if not (x[:, k] == 0).any()]
    squares = len(usable_inputs) <= _SQUARES_INPUTS or (
        function == "x" and len(usable_inputs) <= _SQUARES_INPUTS + 1
    )
    choices = (-2, -1, 0, 1, 2) if squares else (-1, 0, 1)
    scored = []
    for powers in itertools.product(choices, repeat=len(usable_inputs)):
        if sum(p != 0 for p in powers) < 2:
            continue
        argument = tuple((k, p) for k, p in zip(usable_inputs, powers, strict=True) if p)
        scored.append((grid_score(function, argument, x, projected), argument))
    scored.sort(key=lambda pair: pair[0])
    out = []
    for _, argument in scored[:2]:
        fit = best_fit(function, argument, x, projected, power_inputs)
        if fit is not None and math.isfinite(fit.log_rmse):
            out.append(fit)
    return out


def _argument_inputs(fit: ProductFit, inputs: list[int]) -> list[int]:
    """The inputs a law's argument may hold, read from the best fit so far: those of its
    argument and those whose power in it is not whole.

    An input that enters the law only as a power factor gets a whole exponent in any fit
    that models the rest roughly (``mu/(T*k_b)`` in ``mu/(T*k_b)*(B + M*alpha/(c**2*eps))``
    gets 0.98, -1.02, -0.99 from ``exp(x)-1`` of ``B`` alone). Without those the exhaustive
    search can afford squares and more inputs: ``B*c**2*eps/(M*alpha)`` has five of eight.
    """
    in_argument = {k for k, _ in fit.argument}
    return [
        i
        for i in inputs
        if i in in_argument
        or i not in fit.exponents
        or abs(fit.exponents[i] - round(fit.exponents[i])) > _WHOLE_POWER
    ]


def log_space_rows(
    x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, Callable[[list[int]], Projected]] | None:
    """The rows of ``x (n, d)`` where ``y (n,)`` is finite and not zero, and a function that
    gives :class:`Projected` ``log|y|`` on them with the logs of the given columns (and a
    constant) as fixed columns; None when fewer than ``_MIN_ROWS`` rows remain.

    Rows near a zero of ``y`` weigh little (``|y| / (|y| + median|y|)``): there ``log|y|``
    moves by decades for a small shift of ``(a, b)``, which makes the search's landscape
    rugged around the right answer.
    """
    keep = np.isfinite(y) & (np.abs(y) > 1e-12 * max(float(np.max(np.abs(y))), 1e-300))
    x, y = x[keep], y[keep]
    if len(y) < _MIN_ROWS:
        return None
    log_y = np.log(np.abs(y))
    magnitude = np.abs(y)
    weight = magnitude / (magnitude + float(np.median(magnitude)))

    def projection(columns: list[int]) -> Projected:
        fixed = np.column_stack([np.log(np.abs(x[:, columns])), np.ones(len(y))])
        return Projected(fixed, log_y, weight)

    return x, projection


def plausible(fit: ProductFit, x: np.ndarray) -> bool:
    """Whether ``fit`` may be offered as a law: not a huge power of a barely varying factor
    (``(1 + z/b)**c`` with ``b`` and ``c`` near 1e5 is ``exp(z*c/b)``, which the exp entry
    states plainly) and not :func:`linearised`."""
    return (fit.function == "exp" or abs(fit.c) <= _MAX_POWER) and not linearised(fit, x)


def linearised(fit: ProductFit, x: np.ndarray) -> bool:
    """Whether ``f`` stands in for a simpler function over the rows, as another law's limit:
    its argument barely moves (``exp(0.0002*z) - 0.9998`` is a line; for ``exp(u)**c`` the
    argument is ``c*u``), or stays where ``f`` is its asymptote (``cosh(20 + z)**-1.2`` is
    ``exp(-1.2*z)``, ``tanh(9 + z)`` is 1)."""
    if fit.function == "x":
        return False
    u = fit.a * fit.argument_values(x) + fit.b
    # exp(u)**c is exp(c*u) (signed_product reads it so): a tiny a with a huge c is a law
    swing = float(np.max(u) - np.min(u)) * (abs(fit.c) if fit.function == "exp" else 1.0)
    if swing < _MIN_ARGUMENT_SWING:
        return True
    saturates = _ASYMPTOTIC.get(fit.function)
    if saturates is None:
        return False
    far = u if fit.function == "exp(x)-1" else np.abs(u)  # exp(u) - 1 is exp(u) for large u
    return bool(np.min(far) > saturates)


def _grow(
    fit: ProductFit,
    x: np.ndarray,
    projected: Projected,
    inputs: list[int],
    power_inputs: list[int],
) -> ProductFit:
    """``fit`` with its argument grown one input at a time while the log-space RMSE drops
    by a fifth (and stays above float rounding)."""
    while fit.log_rmse > 1e-9 and len(fit.argument) < len(inputs):
        used = {k for k, _ in fit.argument}
        arguments = [
            (*fit.argument, (k, p))
            for k in inputs
            if k not in used and not (x[:, k] == 0).any()
            for p in (1, -1)
        ]
        scores = [grid_score(fit.function, argument, x, projected) for argument in arguments]
        if not arguments or not math.isfinite(min(scores)):
            break
        best = best_fit(fit.function, arguments[int(np.argmin(scores))], x, projected, power_inputs)
        if best is None or not best.log_rmse <= _GROWTH_GAIN * fit.log_rmse:
            break
        fit = best
    return fit
