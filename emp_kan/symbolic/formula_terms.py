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
    plan: list[_LayerPlan] | None = None,
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
    plan : optional
        ``_plan(terms, consts, d)``, made once by a caller that evaluates one formula often.

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
    plan = _plan(terms, consts, x.shape[1]) if plan is None else plan
    values: list[np.ndarray] = [x[:, i] for i in range(x.shape[1])]
    grads: list[np.ndarray | None] = [None] * x.shape[1]
    # A node's Jacobian is kept transposed and compact: ``(rows, n)`` over only the
    # parameters it depends on (its constant, its terms' own parameters and those of the nodes
    # they read), so a term costs in proportion to what it touches, not to P. The entries are
    # the dense forward mode's, added in the same order; the dense mode only also added zeros
    # (NaN where an infinite slope met a zero, which refit_terms zeroes like every non-finite
    # entry: checked equal after that on 400 random formulas of up to three layers).
    with np.errstate(all="ignore"):
        for layer in plan:
            node_v = [np.full(n, p[k]) for k in layer.consts]
            node_g = []
            if jacobian:
                for rows, const_row in zip(layer.rows, layer.const_rows, strict=True):
                    g = np.zeros((len(rows), n))
                    g[const_row] = 1.0
                    node_g.append(g)
            for step in layer.terms:
                C = p[step.i_c]
                a = p[step.i_a] if step.i_a >= 0 else step.fixed_a
                b = p[step.i_b] if step.i_b >= 0 else 0.0
                v = values[step.inp]
                u = a * v + b
                f_u = step.function(u)
                node_v[step.out] = node_v[step.out] + C * f_u
                if not jacobian:
                    continue
                df_u = C * step.derivative(u)
                g = node_g[step.out]
                g[step.row_c] += f_u
                if step.i_a >= 0:
                    g[step.row_a] += df_u * v
                if step.i_b >= 0:
                    g[step.row_b] += df_u
                if grads[step.inp] is not None:
                    g[step.rows_up] += (df_u * a)[None, :] * grads[step.inp]
            values, grads = node_v, node_g if jacobian else [None] * len(node_v)
    if not jacobian:
        return values[0], None
    jac = np.zeros((n, n_par))
    jac[:, plan[-1].rows[0]] = grads[0].T
    return values[0], jac


@dataclass(frozen=True)
class _TermStep:
    """One term's function and its derivative (looked up once per plan: a refit's formula
    keeps its functions), its parameter indices (-1 when not free) and its rows in its
    node's compact Jacobian (``rows_up``: where the rows of the node it reads go)."""

    function: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]
    inp: int
    out: int
    i_c: int
    i_a: int
    i_b: int
    fixed_a: float
    row_c: int
    row_a: int
    row_b: int
    rows_up: slice | np.ndarray


@dataclass(frozen=True)
class _LayerPlan:
    consts: list[int]  # parameter index of each node's constant
    rows: list[np.ndarray]  # per node: the parameter indices of its compact Jacobian, sorted
    const_rows: list[int]
    terms: list[_TermStep]


def _plan(terms: Sequence[Term], consts: Sequence[np.ndarray], n_inputs: int) -> list[_LayerPlan]:
    """Where every parameter of the formula sits, for :func:`evaluate_terms`: per layer, in
    the order of :func:`parameter_vector` (the node constants, then each term's ``C``, ``a``,
    ``b``). It depends on the terms' places and functions (and a fixed ``a``'s sign), not on
    the parameters' values: a refit makes it once."""
    plan = []
    k = 0
    below: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * n_inputs  # inputs: no parameters
    for layer, const in enumerate(consts):
        node_consts = list(range(k, k + len(const)))
        k += len(const)
        own: list[list[int]] = [[c] for c in node_consts]
        pending = []
        for t in (t for t in terms if t.layer == layer):
            function, inp, out = t.function, t.inp, t.out
            a_free, b_free = free_parameters(function)
            fixed_a = 0.0 if a_free else _fixed_a(t)
            i_c = k
            i_a = k + 1 if a_free else -1
            i_b = k + 1 + a_free if b_free else -1
            k += 1 + a_free + b_free
            own[out] += [i for i in (i_c, i_a, i_b) if i >= 0] + below[inp].tolist()
            pending.append((function, inp, out, i_c, i_a, i_b, fixed_a))
        rows = [np.array(sorted(set(indices)), dtype=np.int64) for indices in own]
        where = [{index: r for r, index in enumerate(node_rows)} for node_rows in rows]
        steps = []
        for function, inp, out, i_c, i_a, i_b, fixed_a in pending:
            place = where[out]
            up = [place[i] for i in below[inp]]
            contiguous = up == list(range(up[0], up[0] + len(up))) if up else False
            steps.append(
                _TermStep(
                    numpy_function(function),
                    numpy_derivative(function),
                    inp,
                    out,
                    i_c,
                    i_a,
                    i_b,
                    fixed_a,
                    place[i_c],
                    place.get(i_a, -1),
                    place.get(i_b, -1),
                    slice(up[0], up[0] + len(up)) if contiguous else np.array(up, dtype=np.int64),
                )
            )
        plan.append(
            _LayerPlan(node_consts, rows, [where[o][c] for o, c in enumerate(node_consts)], steps)
        )
        below = rows
    return plan


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
    plan = _plan(terms, consts, x.shape[1])

    def both(p):
        key = p.tobytes()
        if key not in cache:
            cache.clear()
            out, jac = evaluate_terms(terms, consts, x, p, jacobian=True, plan=plan)
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
    with np.errstate(all="ignore"):  # an overflowing solution is refused just below
        solution = solve(both, start, budget)
        solution_sse = float(np.sum(residual(solution) ** 2))
    if not solution_sse <= start_sse:
        return terms, consts
    return _unpack(terms, consts, solution)


def build_expression(
    terms: Sequence[Term],
    consts: Sequence[np.ndarray],
    variables: Sequence[Any],
    parametric: bool = False,
) -> tuple[Any, list[Any], list[float]]:
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
    terms: Sequence[Term],
    consts: Sequence[np.ndarray],
    key: tuple[int, int, int],
    cand: EdgeCandidate,
    scale: float = 1.0,
) -> tuple[list[Term], list[np.ndarray]]:
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
