"""A fully symbolic KAN as a list of terms: evaluation, exact Jacobian, least-squares refit.

Pure numpy/sympy. Each symbolic edge is one :class:`Term` in a canonical form, ``C * f(a v + b)``
(``C * v`` for ``f = x``), and each node of a layer adds one constant. Layer ``l``'s nodes are
the values ``v`` of layer ``l + 1``'s terms; the last layer has one node, the output.

The parameter vector ``p`` of a formula lists, layer by layer, the layer's node constants and
then, for each of its terms in order, ``C``, ``a`` (if free) and ``b`` (if free) - see
:func:`free_parameters`. :func:`build_expression` with ``parametric=True`` names them in the
same order, so sympy and the numpy evaluator agree.

The canonical form removes pykan's redundant affine parameters (``c``, ``d`` on each edge plus
the node's scale and bias), which keeps the least squares well posed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sympy as sp

from emp_kan.symbolic.edge_fit import EdgeCandidate, numpy_derivative, numpy_function
from emp_kan.symbolic.levenberg import levenberg_marquardt
from emp_kan.symbolic.registry import library_function

__all__ = [
    "Term",
    "build_expression",
    "canonical",
    "evaluate_terms",
    "free_parameters",
    "parameter_vector",
    "refit_terms",
    "swap_term",
]


@dataclass(frozen=True)
class Term:
    """One symbolic edge in canonical form: ``C * f(a * v + b)`` (``C * v`` for ``f = x``).

    ``layer``, ``out`` and ``inp`` are positions in the (pruned) model. ``scale`` is the node's
    affine factor at extraction, so that a swapped candidate with edge parameters
    ``(a, b, c, d)`` starts at ``C = scale * c``; ``d`` is the edge's own offset, already
    counted in its node's constant.
    """

    layer: int
    out: int
    inp: int
    function: str
    a: float
    b: float
    C: float
    scale: float
    d: float

    @property
    def key(self) -> tuple[int, int, int]:
        return self.layer, self.out, self.inp


def _homogeneous(function: str) -> float | None:
    """``p`` when ``f(a v + b) = |a|**p * f(sign(a) v + b/|a|)`` (power-like), else None."""
    return library_function(function).homogeneous


def free_parameters(function: str) -> tuple[bool, bool]:
    """Whether ``a`` and ``b`` are free parameters in the canonical form of ``function``.

    For power-like functions and ``log`` the scale of ``a`` moves into ``C`` (or the node
    constant), leaving its sign; for ``exp`` the shift ``b`` moves into ``C``; ``x`` has neither.
    """
    if function == "x":
        return False, False
    if _homogeneous(function) is not None or function == "log":
        return False, True  # a is the sign +-1
    if function == "exp":
        return True, False  # b folded into C
    return True, True


def canonical(term: Term, consts: list[np.ndarray]) -> Term:
    """``term`` without the scale redundancy between ``C`` and ``a`` (or ``b`` for exp).

    ``log`` moves ``C log|a|`` into its node's constant: ``consts`` is updated in place.
    """
    a, b, C = term.a, term.b, term.C
    p = _homogeneous(term.function)
    if p is not None and abs(a) > 1e-12:
        return replace(term, C=C * abs(a) ** p, a=math.copysign(1.0, a), b=b / abs(a))
    if term.function == "log" and abs(a) > 1e-12:
        consts[term.layer][term.out] += C * math.log(abs(a))  # log(a v + b) = log|a| + ...
        return replace(term, a=math.copysign(1.0, a), b=b / abs(a))
    if term.function == "exp":
        # C e^b via logs: fits often pair a tiny C with a large b
        folded = 0.0 if C == 0 else math.copysign(math.exp(min(700.0, math.log(abs(C)) + b)), C)
        return replace(term, C=folded, b=0.0)
    return term


def _fixed_a(term: Term) -> float:
    """``a`` of a term whose ``a`` is not free: the sign +-1 (1 for ``x``)."""
    return 1.0 if term.function == "x" else float(int(term.a))


def parameter_vector(terms: Sequence[Term], consts: Sequence[np.ndarray]) -> np.ndarray:
    """The formula's parameters ``(P,)`` in the documented order."""
    values: list[float] = []
    for layer, const in enumerate(consts):
        values.extend(float(c) for c in const)
        for t in (t for t in terms if t.layer == layer):
            a_free, b_free = free_parameters(t.function)
            values.append(t.C)
            if a_free:
                values.append(t.a)
            if b_free:
                values.append(t.b)
    return np.array(values, dtype=np.float64)


def _unpack(terms, consts, p) -> tuple[list[Term], list[np.ndarray]]:
    it = iter(np.asarray(p, dtype=np.float64).tolist())
    new_terms = list(terms)
    new_consts = []
    for layer, const in enumerate(consts):
        new_consts.append(np.array([next(it) for _ in const]))
        for k, t in enumerate(new_terms):
            if t.layer != layer:
                continue
            a_free, b_free = free_parameters(t.function)
            changes = {"C": next(it)}
            if a_free:
                changes["a"] = next(it)
            if b_free:
                changes["b"] = next(it)
            new_terms[k] = replace(t, **changes)
    return new_terms, new_consts


def evaluate_terms(
    terms: Sequence[Term],
    consts: Sequence[np.ndarray],
    x: np.ndarray,
    p: np.ndarray | None = None,
    jacobian: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The formula's output on ``x`` and, optionally, its Jacobian in the parameters.

    Parameters
    ----------
    terms, consts
        The formula; ``consts[l]`` has shape ``(width of layer l + 1,)``.
    x : ndarray, ``(n, d)``
    p : ndarray, ``(P,)``, optional
        Parameters to use instead of the terms' own (see :func:`parameter_vector`).
    jacobian : bool

    Returns
    -------
    y : ndarray, ``(n,)``
        Non-finite where the formula is undefined.
    jac : ndarray ``(n, P)`` or None
        Exact derivatives by forward-mode differentiation through the layers.
    """
    x = np.asarray(x, dtype=np.float64)
    if p is None:
        p = parameter_vector(terms, consts)
    n, n_par = x.shape[0], len(p)
    values: list[np.ndarray] = [x[:, i] for i in range(x.shape[1])]
    grads: list[np.ndarray | None] = [None] * x.shape[1]
    k = 0
    # Each node's Jacobian is kept transposed, (P, n): a parameter's slope is then one
    # contiguous row; the result is handed back as (n, P) in C order, number for number.
    with np.errstate(all="ignore"):
        for layer, const in enumerate(consts):
            node_v = []
            node_g: list[np.ndarray | None] = []
            for _ in const:
                node_v.append(np.full(n, p[k]))
                if jacobian:
                    g = np.zeros((n_par, n))
                    g[k] = 1.0
                    node_g.append(g)
                k += 1
            for t in (t for t in terms if t.layer == layer):
                a_free, b_free = free_parameters(t.function)
                i_c = k
                C = p[k]
                k += 1
                a, i_a = (p[k], k) if a_free else (_fixed_a(t), None)
                k += a_free
                b, i_b = (p[k], k) if b_free else (0.0, None)
                k += b_free
                v = values[t.inp]
                u = a * v + b
                f_u = numpy_function(t.function)(u)
                node_v[t.out] = node_v[t.out] + C * f_u
                if not jacobian:
                    continue
                df_u = C * numpy_derivative(t.function)(u)
                g = node_g[t.out]
                g[i_c] += f_u
                if i_a is not None:
                    g[i_a] += df_u * v
                if i_b is not None:
                    g[i_b] += df_u
                if grads[t.inp] is not None:
                    g += (df_u * a)[None, :] * grads[t.inp]
            values, grads = node_v, node_g if jacobian else [None] * len(node_v)
    return values[0], (np.ascontiguousarray(grads[0].T) if jacobian else None)


def refit_terms(
    terms: Sequence[Term],
    consts: Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    max_nfev: int = 50,
    solve: Callable[[Callable, np.ndarray, int], np.ndarray] = levenberg_marquardt,
) -> tuple[list[Term], list[np.ndarray]]:
    """Least-squares refit (Levenberg-Marquardt, :mod:`emp_kan.symbolic.levenberg`) of every
    parameter against ``x (n, d)``, ``y (n,)``.

    Uses the exact Jacobian. ``max_nfev`` evaluations per parameter, at most 10x that in all
    (with an exact Jacobian an evaluation is about one iteration; more rarely paid off in tests
    on Feynman I.6.20a, I.6.20, I.12.1, I.12.4).
    Returns the input unchanged when the fit cannot start (non-finite start) or does not
    improve the squared error. ``solve(residual_and_jacobian, start, max_evaluations) -> p``
    is the least-squares solver (another one for comparisons: benchmarks/bench_refit.py).
    """
    terms, consts = list(terms), [np.asarray(c, dtype=np.float64) for c in consts]
    start = parameter_vector(terms, consts)
    if start.size == 0:
        return terms, consts
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    penalty = 1e3 * float(np.abs(y).max() + 1.0)
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def both(p):
        key = p.tobytes()
        if key not in cache:
            cache.clear()
            out, jac = evaluate_terms(terms, consts, x, p, jacobian=True)
            bad = ~np.isfinite(out)
            r = np.where(bad, penalty, out - y)
            jac = np.where(np.isfinite(jac) & ~bad[:, None], jac, 0.0)
            cache[key] = (r, jac)
        return cache[key]

    def residual(p):
        return both(p)[0]

    # An overflowed parameter (a huge canonical scale) cannot start a fit: keep the terms.
    if not np.isfinite(start).all() or not np.isfinite(evaluate_terms(terms, consts, x)[0]).all():
        return terms, consts
    with np.errstate(over="ignore"):  # an overflowing start is refused just below
        start_sse = float(np.sum(residual(start) ** 2))
    # Not MINPACK's "lm": it rounds with the memory alignment of the work arrays it allocates,
    # and on an ill-conditioned refit (an edge read as exp(85*y/9)) the same inputs gave one
    # of two results by heap state, so one pruned model gave different formulas from call to
    # call. Not scipy's "trf" either: on the refits of a default discovery it took 1.4x our
    # solver's time (benchmarks/bench_refit.py).
    budget = min(max_nfev * start.size, 10 * max_nfev)  # bounded: big formulas get less each
    with np.errstate(all="ignore"):
        solution = solve(both, start, budget)
    if not float(np.sum(residual(solution) ** 2)) <= start_sse:
        return terms, consts
    return _unpack(terms, consts, solution)


def build_expression(
    terms: Sequence[Term], consts: Sequence[np.ndarray], variables: Sequence[Any],
    parametric: bool = False,
) -> tuple[Any, list[Any], list[float]]:  # fmt: skip
    """(sympy expression, parameter symbols, their values); numbers inline when not parametric."""
    params: list[Any] = []
    values: list[float] = []

    def number(v: float):
        if not parametric:
            return sp.Float(v)
        p = sp.Symbol(f"p{len(params)}", real=True)
        params.append(p)
        values.append(float(v))
        return p

    current = list(variables)
    for layer, const in enumerate(consts):
        nodes = [number(c) for c in const]
        for t in (t for t in terms if t.layer == layer):
            v = current[t.inp]
            if t.function == "x":
                nodes[t.out] = nodes[t.out] + number(t.C) * v
                continue
            a_free, b_free = free_parameters(t.function)
            coef = number(t.C)
            a = number(t.a) if a_free else sp.Integer(int(_fixed_a(t)))
            b = number(t.b) if b_free else sp.Integer(0)
            f = library_function(t.function).sympy
            nodes[t.out] = nodes[t.out] + coef * f(a * v + b)
        current = nodes
    return current[0], params, values


def swap_term(
    terms: Sequence[Term], consts: Sequence[np.ndarray], key: tuple[int, int, int],
    cand: EdgeCandidate, scale: float = 1.0,
) -> tuple[list[Term], list[np.ndarray]]:  # fmt: skip
    """Terms and constants with edge ``key`` (layer, out, in positions) set to ``cand``.

    ``scale`` is used when the edge has no term yet (it was a constant).
    """
    layer, out, inp = key
    consts = [np.array(c, dtype=np.float64) for c in consts]
    kept = [t for t in terms if t.key != key]
    old = next((t for t in terms if t.key == key), None)
    if old is not None:
        scale = old.scale
        consts[layer][out] -= scale * old.d
    consts[layer][out] += scale * cand.d
    if cand.function == "x":
        consts[layer][out] += scale * cand.c * cand.b
        kept.append(Term(layer, out, inp, "x", 1.0, 0.0, scale * cand.c * cand.a, scale, cand.d))
    elif cand.function != "0":
        new = Term(layer, out, inp, cand.function, cand.a, cand.b, scale * cand.c, scale, cand.d)
        kept.append(canonical(new, consts))
    kept.sort(key=lambda t: t.key)
    return kept, consts
