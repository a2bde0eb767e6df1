"""One-input pieces of a law as sparse sums: ``c0 + sum_k c_k x**k + sum_j c_j f_j(a_j x + b_j)``.

The per-edge fit ``c * f(a x + b) + d`` is the one-term case; a piece that carries a sum of
terms (``x**4/2 - 2*x**2 + x``, ``sin(x) + x**2``) needs more. Every candidate sum has at most
``max_terms`` terms: monomials up to ``max_degree`` (linear, solved in closed form) and at most
two library functions, whose inner ``(a, b)`` are searched on a grid and polished jointly by
variable projection (the linear coefficients re-solved at every step). Sums are ranked by the
Bayesian information criterion on the validation rows, with errors below the noise floor
counted as equal, so the sum with the fewest parameters that reaches the data's accuracy wins.

Pure numpy: samples in, ranked sums out; deterministic.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from emp_kan.symbolic.levenberg import levenberg_marquardt
from emp_kan.symbolic.registry import library_function

__all__ = ["SparseSum", "Term1D", "fit_sparse_sum", "function_terms", "information_criterion"]

_A_GRID = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
_B_GRID = np.linspace(-4.0, 4.0, 17)
_NUISANCE_DEGREES = ((), (1, 2))
_STARTS = 2  # grid points polished per (function, nuisance): the best of each direction
_SECOND_FROM = 4  # one-function sums a second function is added to
_POLISHED = 6  # best sums polished jointly at the end
_RELATIVE_FLOOR = 1e-5  # errors below this share of the labels' spread count as equal
# log(a x + b) = log|a| + log(x + b/a): its scale is the intercept's, as a power's is the
# coefficient's; only b is fitted (a is +1 or -1).
_SHIFT_ONLY = {"log"}
# Monomials cover these; abs and sgn add kinks a smooth piece does not have.
_NOT_FUNCTIONS = {"0", "x", "x^2", "x^3", "x^4", "x^5", "abs", "sgn"}


@dataclass(frozen=True)
class Term1D:
    """``f(a x + b)``; for a monomial ``x**power`` (``function`` is ``"x^k"``, a = 1, b = 0)."""

    function: str
    a: float = 1.0
    b: float = 0.0
    power: float = 0  # a monomial's power (1..5, or -1, -2, 1/2 in the linear stage)

    def values(self, x: np.ndarray) -> np.ndarray:
        """The term on ``x (n,)``, ``(n,)``."""
        if self.power:
            with np.errstate(all="ignore"):
                return x**self.power
        with np.errstate(all="ignore"):
            return library_function(self.function).numpy(self.a * x + self.b)

    def sympy(self, symbol: sp.Expr) -> sp.Expr:
        if self.power:
            return symbol ** sp.nsimplify(self.power)
        inner = sp.Float(self.a) * symbol + sp.Float(self.b)
        return library_function(self.function).sympy(inner)

    @property
    def free(self) -> tuple[str, ...]:
        """The inner parameters fitted: none for a monomial, ``b`` alone for a power-like
        function and ``a`` alone for ``exp`` (the other moves into the coefficient), else both."""
        if self.power:
            return ()
        if _shift_only(self.function):
            return ("b",)
        return ("a",) if self.function == "exp" else ("a", "b")

    @property
    def parameters(self) -> int:
        return len(self.free)


def _shift_only(function: str) -> bool:
    return function in _SHIFT_ONLY or library_function(function).homogeneous is not None


def _monomial(power: int) -> Term1D:
    return Term1D(f"x^{power}", power=power)


@dataclass
class SparseSum:
    """``intercept + sum_k coefficients[k] * terms[k](x)``, fitted on the fit rows.

    Attributes
    ----------
    terms : tuple of Term1D
    coefficients : ndarray, ``(len(terms),)``
    intercept : float
    val_rmse : float
        On the validation rows.
    criterion : float
        :func:`information_criterion` on the validation rows (lower is better).
    """

    terms: tuple[Term1D, ...]
    coefficients: np.ndarray
    intercept: float
    val_rmse: float = math.inf
    criterion: float = math.inf
    parameters: int = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = 1 + len(self.terms) + sum(t.parameters for t in self.terms)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The sum on ``x (n,)``, ``(n,)``."""
        out = np.full(x.shape, self.intercept, dtype=np.float64)
        for c, term in zip(self.coefficients, self.terms, strict=True):
            out = out + c * term.values(x)
        return out

    def sympy(self, symbol: sp.Expr) -> sp.Expr:
        """The sum as sympy in ``symbol``, constants as floats (to be snapped)."""
        expr = sp.Float(self.intercept)
        for c, term in zip(self.coefficients, self.terms, strict=True):
            expr = expr + sp.Float(float(c)) * term.sympy(symbol)
        return expr

    @property
    def functions(self) -> tuple[str, ...]:
        return tuple(t.function for t in self.terms if not t.power)


def information_criterion(rmse: float, n: int, parameters: int, floor: float) -> float:
    """Schwarz's criterion ``n log(max(rmse, floor)**2) + k log(n)`` of a fit with ``k``
    parameters and RMSE ``rmse`` on ``n`` rows: each parameter must buy a ``n**(1/n)`` smaller
    mean square error; below ``floor`` errors count as equal."""
    if not math.isfinite(rmse):
        return math.inf
    return n * math.log(max(rmse, floor, 1e-300) ** 2) + parameters * math.log(n)


def function_terms(library: tuple[str, ...]) -> list[str]:
    """The library functions a sparse sum may hold (monomials stand for the powers)."""
    out = []
    for name in library:
        if name in _NOT_FUNCTIONS or name in out:
            continue
        entry = library_function(name)
        power = entry.homogeneous
        if power is not None and float(power).is_integer() and power > 0:
            continue
        out.append(name)
    return out


def _solve(columns: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Least squares ``y ~ [1, columns] @ (c0, c)`` with columns ``(n, m)``; ``(c0, c)`` as one
    vector and the RMSE, or None when a column is not finite."""
    if not np.isfinite(columns).all():
        return None
    design = np.column_stack([np.ones(len(y)), columns])
    scale = np.linalg.norm(design, axis=0)
    scale[scale == 0] = 1.0
    solution, *_ = np.linalg.lstsq(design / scale, y, rcond=None)
    solution = solution / scale
    residual = design @ solution - y
    return solution, float(np.sqrt(np.mean(residual**2)))


def _fitted(terms: tuple[Term1D, ...], x: np.ndarray, y: np.ndarray) -> SparseSum | None:
    columns = np.column_stack([t.values(x) for t in terms]) if terms else np.empty((len(x), 0))
    solved = _solve(columns, y)
    if solved is None:
        return None
    solution, _ = solved
    return SparseSum(terms, solution[1:], float(solution[0]))


def _grid_starts(
    function: str, x: np.ndarray, y: np.ndarray, nuisance: np.ndarray
) -> list[tuple[float, float]]:
    """The best ``(a, b)`` of ``f(a x + b)`` on a grid (over ``x`` scaled to [-1, 1]), each
    scored by the share of ``y`` it explains beyond the ``nuisance (n, m)`` columns."""
    low, high = float(x.min()), float(x.max())
    centre, half = (high + low) / 2, max((high - low) / 2, 1e-12)
    homogeneous = _shift_only(function)
    a_z = np.array([1.0, -1.0]) if homogeneous else np.concatenate([_A_GRID, -_A_GRID])
    b_grid = _B_GRID * (2.0 if homogeneous else 1.0)
    if function == "exp":  # exp(a x + b) is e**b exp(a x): b is the coefficient's
        b_grid = np.zeros(1)
    aa, bb = (v.ravel() for v in np.meshgrid(a_z, b_grid, indexing="ij"))
    # z = (x - centre) / half: a_z z + b_z = (a_z / half) x + (b_z - a_z centre / half)
    a = aa / half if not homogeneous else aa
    b = bb - aa * centre / half if not homogeneous else bb * half - aa * centre
    if function == "exp":
        b = np.zeros_like(aa)
    with np.errstate(all="ignore"):
        values = library_function(function).numpy(a[:, None] * x[None, :] + b[:, None])
    ok = np.isfinite(values).all(axis=1)
    values = np.where(ok[:, None], values, 0.0)
    basis = np.column_stack([np.ones(len(x)), nuisance])
    q, _ = np.linalg.qr(basis)
    y_rest = y - q @ (q.T @ y)
    v_rest = values - (values @ q) @ q.T
    norms = np.einsum("ij,ij->i", v_rest, v_rest)
    explained = np.where(
        ok & (norms > 1e-12 * len(x)), (v_rest @ y_rest) ** 2 / np.maximum(norms, 1e-300), -1.0
    )
    starts: list[tuple[float, float]] = []
    kept: list[float] = []
    signs: set[bool] = set()
    for k in np.argsort(-explained, kind="stable"):
        if explained[k] <= 0 or len(starts) == _STARTS:
            break
        # f(-u) = -f(u) and f(-u) = f(u) give a mirrored twin of every start: one is enough.
        if any(abs(explained[k] - e) <= 1e-9 * max(e, 1e-300) for e in kept):
            continue
        # The best start of each direction first: a rising and a falling exp fit alike
        # over a short stretch once the other terms have their say.
        if len(starts) == _STARTS - 1 and len(signs) == 1 and (a[k] > 0) in signs:
            continue
        starts.append((float(a[k]), float(b[k])))
        kept.append(float(explained[k]))
        signs.add(bool(a[k] > 0))
    return starts


def _polished(terms: tuple[Term1D, ...], x: np.ndarray, y: np.ndarray) -> tuple[Term1D, ...]:
    """``terms`` with every function's inner ``(a, b)`` polished jointly (variable projection:
    the linear coefficients are solved at every point)."""
    slots = [(k, name) for k, t in enumerate(terms) for name in t.free]
    if not slots:
        return terms

    def with_parameters(p: np.ndarray) -> tuple[Term1D, ...]:
        out = list(terms)
        for value, (k, name) in zip(p, slots, strict=True):
            t = out[k]
            out[k] = Term1D(
                t.function, value if name == "a" else t.a, value if name == "b" else t.b
            )
        return tuple(out)

    def residual(p: np.ndarray) -> np.ndarray:
        fit = _fitted(with_parameters(p), x, y)
        if fit is None:
            return np.full(len(y), 1e150)
        return fit.predict(x) - y

    def residual_and_jacobian(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = residual(p)
        jac = np.empty((len(r), len(p)))
        for i in range(len(p)):
            step = 1e-7 * max(abs(p[i]), 1.0)
            shifted = p.copy()
            shifted[i] += step
            jac[:, i] = (residual(shifted) - r) / step
        return r, np.where(np.isfinite(jac), jac, 0.0)

    start = np.array([getattr(terms[k], name) for k, name in slots])
    with np.errstate(all="ignore"):
        best = levenberg_marquardt(residual_and_jacobian, start, max_nfev=40)
    return with_parameters(best)


def _scored(
    terms: tuple[Term1D, ...],
    fit_rows: tuple[np.ndarray, np.ndarray],
    val_rows: tuple[np.ndarray, np.ndarray],
    floor: float,
) -> SparseSum | None:
    found = _fitted(terms, *fit_rows)
    if found is None:
        return None
    xv, yv = val_rows
    with np.errstate(all="ignore"):
        error = found.predict(xv) - yv
    rmse = float(np.sqrt(np.mean(error**2))) if np.isfinite(error).all() else math.inf
    found.val_rmse = rmse
    found.criterion = information_criterion(rmse, len(yv), found.parameters, floor)
    return found


def _with_monomial_subsets(
    functions: tuple[Term1D, ...],
    max_terms: int,
    max_degree: int,
    extra_powers: tuple[float, ...] = (),
) -> list[tuple[Term1D, ...]]:
    """``functions`` joined by every set of monomials (powers 1 to ``max_degree`` and
    ``extra_powers``) that keeps at most ``max_terms`` terms."""
    room = max_terms - len(functions)
    out = []
    pool = (*range(1, max_degree + 1), *extra_powers)
    for size in range(0, room + 1):
        for powers in itertools.combinations(pool, size):
            terms = tuple(_monomial(p) for p in powers) + functions
            if terms:
                out.append(terms)
    return out


def _one_function_seeds(
    function: str, x: np.ndarray, y: np.ndarray, base: tuple[Term1D, ...] = ()
) -> list[tuple[Term1D, ...]]:
    """``base`` plus ``function`` at its best inner parameters: grid starts against each set of
    nuisance monomials (a polynomial part would otherwise bend the function's fit), polished."""
    out = []
    nuisance_sets = _NUISANCE_DEGREES if not base else ((),)
    for degrees in nuisance_sets:
        nuisance_terms = base + tuple(_monomial(p) for p in degrees)
        nuisance = (
            np.column_stack([t.values(x) for t in nuisance_terms])
            if nuisance_terms
            else np.empty((len(x), 0))
        )
        if not np.isfinite(nuisance).all():
            continue
        for a, b in _grid_starts(function, x, y, nuisance):
            terms = _polished((*nuisance_terms, Term1D(function, a, b)), x, y)
            out.append(tuple(t for t in terms if not t.power))
    return out


def fit_sparse_sum(
    fit_rows: tuple[np.ndarray, np.ndarray],
    val_rows: tuple[np.ndarray, np.ndarray],
    library: tuple[str, ...],
    max_terms: int = 4,
    max_degree: int = 5,
    top: int = 3,
) -> list[SparseSum]:
    """The ``top`` best sparse sums of ``y`` over one input, best first.

    Parameters
    ----------
    fit_rows, val_rows : tuple of ndarray
        ``(x (n,), y (n,))`` rows to fit on and rows to rank on.
    library : tuple of str
        Registry names; :func:`function_terms` says which may join a sum.
    max_terms : int
        Terms at most besides the intercept (monomials and functions together).
    max_degree : int
        The highest monomial power.
    top : int

    Returns
    -------
    list of SparseSum
        Ranked by :func:`information_criterion` on the validation rows; polynomials, sums with
        one library function and sums with two.
    """
    x, y = (np.asarray(v, dtype=np.float64) for v in fit_rows)
    xv, yv = (np.asarray(v, dtype=np.float64) for v in val_rows)
    spread = float(np.std(yv)) if yv.size > 1 else 0.0
    floor = _RELATIVE_FLOOR * spread if spread > 0 else 1e-300
    found: dict[tuple, SparseSum] = {}

    def consider(terms_list: list[tuple[Term1D, ...]]) -> None:
        for terms in terms_list:
            key = tuple((t.function, round(t.a, 9), round(t.b, 9)) for t in terms)
            if key not in found:
                scored = _scored(terms, (x, y), (xv, yv), floor)
                if scored is not None:
                    found[key] = scored

    # Laurent and root terms join the linear stage where the input allows them: the virial
    # series 1 + B/V + C/V**2 is linear in 1/V and 1/V**2.
    everywhere = np.concatenate([x, xv])
    extra: tuple[float, ...] = ()
    if (everywhere != 0).all():
        extra += (-1, -2)
    if (everywhere > 0).all():
        extra += (0.5,)
    consider(_with_monomial_subsets((), max_terms, max_degree, extra))
    singles: list[SparseSum] = []
    for function in function_terms(tuple(library)):
        before = set(found)
        for seed in _one_function_seeds(function, x, y):
            consider(_with_monomial_subsets(seed, max_terms, max_degree))
        singles += [found[k] for k in found if k not in before]
    # A second function joins the best lone functions (without monomials: a polynomial part
    # fitted beside one function soaks up what the second should explain).
    alone = sorted(
        (s for s in singles if len(s.terms) == 1), key=lambda s: (s.val_rmse, s.parameters)
    )
    bases = []
    for single in alone:
        if single.functions not in [b.functions for b in bases]:
            bases.append(single)
    for single in bases[: _SECOND_FROM if max_terms > 1 else 0]:
        for function in function_terms(tuple(library)):
            for pair in _one_function_seeds(function, x, y, single.terms):
                consider(_with_monomial_subsets(pair, max_terms, max_degree))
    ranked = sorted(found.values(), key=lambda s: s.criterion)
    polished = []
    for candidate in ranked[:_POLISHED]:
        terms = _polished(candidate.terms, x, y)
        again = _scored(terms, (x, y), (xv, yv), floor)
        polished.append(
            again if again is not None and again.criterion < candidate.criterion else candidate
        )
    polished.sort(key=lambda s: s.criterion)
    return polished[:top]
