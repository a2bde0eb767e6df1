"""The canonical-form formula: its evaluator agrees with sympy, its Jacobian is exact."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from emp_kan.symbolic.edge_fit import EdgeCandidate, numpy_derivative, numpy_function
from emp_kan.symbolic.formula_terms import (
    Term,
    build_expression,
    canonical,
    evaluate_terms,
    parameter_vector,
    refit_terms,
    swap_term,
)

RNG = np.random.default_rng(0)
X = np.column_stack([RNG.uniform(1.0, 2.0, 40), RNG.uniform(-1.0, 1.0, 40)])  # (40, 2)
VARS = [sp.Symbol("u", real=True), sp.Symbol("w", real=True)]

# A [2, 2, 1] formula touching every kind of parameter layout.
TERMS = [
    Term(0, 0, 0, "sin", 1.3, 0.2, 0.7, 1.0, 0.0),
    Term(0, 0, 1, "x^2", 1.0, -0.3, 2.0, 1.0, 0.0),
    Term(0, 1, 0, "log", 1.0, 0.5, -1.1, 1.0, 0.0),
    Term(0, 1, 1, "exp", 0.8, 0.0, 0.4, 1.0, 0.0),
    Term(1, 0, 0, "tanh", 0.6, 0.1, 1.5, 1.0, 0.0),
    Term(1, 0, 1, "x", 1.0, 0.0, -0.9, 1.0, 0.0),
]
CONSTS = [np.array([0.3, -0.2]), np.array([0.05])]


@pytest.mark.parametrize(
    "name",
    sorted(
        set(
            [
                "x^2",
                "x^3",
                "x^4",
                "x^5",
                "1/x",
                "1/x^2",
                "1/x^3",
                "1/x^4",
                "1/x^5",
                "sqrt",
                "x^0.5",
                "x^1.5",
                "1/sqrt(x)",
                "1/x^0.5",
                "exp",
                "log",
                "sin",
                "cos",
                "tan",
                "tanh",
                "abs",
                "arcsin",
                "arccos",
                "arctan",
                "arctanh",
                "gaussian",
                "x",
            ]
        )
    ),
)
def test_every_derivative_matches_a_central_difference(name):
    u = np.linspace(0.15, 0.85, 29)  # inside every function's domain, away from kinks
    h = 1e-6
    numeric = (numpy_function(name)(u + h) - numpy_function(name)(u - h)) / (2 * h)
    np.testing.assert_allclose(numpy_derivative(name)(u), numeric, rtol=1e-5, atol=1e-6)


def test_the_evaluator_agrees_with_the_sympy_expression():
    expr = build_expression(TERMS, CONSTS, VARS)[0]
    fn = sp.lambdify(VARS, expr, "numpy")
    np.testing.assert_allclose(evaluate_terms(TERMS, CONSTS, X)[0], fn(*X.T), rtol=1e-12)


def test_parametric_expression_names_the_parameters_in_vector_order():
    expr, params, values = build_expression(TERMS, CONSTS, VARS, parametric=True)
    np.testing.assert_array_equal(values, parameter_vector(TERMS, CONSTS))
    p = parameter_vector(TERMS, CONSTS) * 1.1  # a different point, so the order matters
    fn = sp.lambdify(VARS + params, expr, "numpy")
    np.testing.assert_allclose(evaluate_terms(TERMS, CONSTS, X, p)[0], fn(*X.T, *p), rtol=1e-12)


def _assert_jacobian_matches_central_differences(terms, consts, p):
    _, jac = evaluate_terms(terms, consts, X, p, jacobian=True)
    assert jac.shape == (X.shape[0], p.size)
    h = 1e-6
    for k in range(p.size):
        step = np.zeros_like(p)
        step[k] = h
        up = evaluate_terms(terms, consts, X, p + step)[0]
        down = evaluate_terms(terms, consts, X, p - step)[0]
        np.testing.assert_allclose(jac[:, k], (up - down) / (2 * h), rtol=1e-4, atol=1e-5)


@given(st.lists(st.floats(-0.3, 0.3), min_size=16, max_size=16))
def test_the_jacobian_matches_central_differences(shift):
    p = parameter_vector(TERMS, CONSTS) + np.array(shift)
    _assert_jacobian_matches_central_differences(TERMS, CONSTS, p)


def test_the_jacobian_of_a_deeper_formula_listed_out_of_order_matches_central_differences():
    # Three layers, a node read by two terms, a node no term reads, terms listed out of layer
    # order: each node's Jacobian holds only the parameters it depends on, in scattered rows.
    terms = [
        Term(2, 0, 1, "sin", 0.7, 0.1, 1.2, 1.0, 0.0),
        Term(0, 0, 0, "x^2", 1.0, 0.2, 0.5, 1.0, 0.0),
        Term(1, 0, 0, "tanh", 0.9, -0.2, 1.1, 1.0, 0.0),
        Term(0, 1, 1, "cos", 1.1, 0.3, -0.6, 1.0, 0.0),
        Term(1, 1, 0, "exp", 0.4, 0.0, 0.3, 1.0, 0.0),
        Term(1, 1, 1, "x", 1.0, 0.0, 0.8, 1.0, 0.0),
        Term(0, 2, 0, "sin", 0.5, 0.0, 0.9, 1.0, 0.0),
        Term(2, 0, 0, "x^3", 1.0, 0.1, -0.4, 1.0, 0.0),
    ]
    consts = [np.array([0.1, -0.3, 0.2]), np.array([0.0, 0.4]), np.array([-0.1])]
    _assert_jacobian_matches_central_differences(terms, consts, parameter_vector(terms, consts))


def test_the_refit_recovers_perturbed_parameters():
    y = evaluate_terms(TERMS, CONSTS, X)[0]
    p = parameter_vector(TERMS, CONSTS)
    noisy = [Term(**{**t.__dict__, "C": t.C * 1.2}) for t in TERMS]
    terms, consts = refit_terms(noisy, CONSTS, X, y)
    assert np.sqrt(np.mean((evaluate_terms(terms, consts, X)[0] - y) ** 2)) < 1e-6
    assert parameter_vector(terms, consts).shape == p.shape


def test_canonical_form_keeps_the_function_values():
    for t in [
        Term(0, 0, 0, "x^2", 2.5, 0.4, 0.3, 1.0, 0.0),
        Term(0, 0, 0, "log", -2.0, 5.0, 0.3, 1.0, 0.0),
        Term(0, 0, 0, "exp", 1.5, 0.7, 0.3, 1.0, 0.0),
    ]:
        consts = [np.array([0.1])]
        before = 0.1 + t.C * numpy_function(t.function)(t.a * X[:, :1] + t.b)[:, 0]
        new = canonical(t, consts)
        assert np.isfinite(before).all()
        np.testing.assert_allclose(evaluate_terms([new], consts, X[:, :1])[0], before, rtol=1e-10)


def test_swapping_an_edge_keeps_its_candidate_curve():
    cand = EdgeCandidate("cos", 1.7, -0.2, 0.9, 0.25, 0.0, 1.0, 2, 0.0)
    terms, consts = swap_term(TERMS, CONSTS, (0, 0, 1), cand)
    without_edge = evaluate_terms(TERMS[:1], [CONSTS[0][:1]], X)[0]  # sin term + constant
    layer0 = [t for t in terms if t.layer == 0 and t.out == 0]
    assert [t.function for t in layer0] == ["sin", "cos"]
    got = evaluate_terms(layer0, [consts[0][:1]], X)[0]
    np.testing.assert_allclose(got, without_edge + cand.predict(X[:, 1]), rtol=1e-10)


def test_terms_the_formula_does_not_need_are_dropped_and_recorded():
    from emp_kan.symbolic.formula import EdgeFit
    from emp_kan.symbolic.term_search import drop_terms

    x = np.linspace(1.0, 2.0, 200).reshape(-1, 1)
    y = 3.0 * x[:, 0] ** 2 - 1.0
    needed = Term(0, 0, 0, "x^2", 1.0, 0.0, 3.0, 1.0, 0.0)
    junk = Term(0, 0, 1, "sin", 2.0, 0.1, 1e-7, 1.0, 0.0)  # a tiny second path, as pruning leaves
    x2 = np.column_stack([x[:, 0], x[:, 0] ** 0.5])
    fits = {t.key: EdgeFit(0, 0, t.inp, t.function, 1.0, []) for t in (needed, junk)}
    terms, consts = drop_terms([needed, junk], [np.array([-1.0])], (x2, y), (x2, y), fits, 20)
    assert [t.function for t in terms] == ["x^2"]
    assert fits[junk.key].function == "0" and "dropped (sin)" in fits[junk.key].note
    assert fits[needed.key].function == "x^2"
    np.testing.assert_allclose(evaluate_terms(terms, consts, x2)[0], y, atol=1e-6)


def test_a_formula_undefined_inside_the_data_range_gets_a_defined_edge():
    from emp_kan.symbolic.formula import EdgeFit
    from emp_kan.symbolic.term_search import defined_on_box

    # Training rows all have x >= 0.6, but the inputs' range starts at 0: sqrt(x - 0.5) is
    # undefined on part of it, so test rows there would get NaN.
    x_fit = np.linspace(0.6, 1.0, 50).reshape(-1, 1)
    y_fit = np.sqrt(x_fit[:, 0] - 0.5)
    box = np.linspace(0.0, 1.0, 101).reshape(-1, 1)
    term = Term(0, 0, 0, "sqrt", 1.0, -0.5, 1.0, 1.0, 0.0)
    sqrt_cand = EdgeCandidate("sqrt", 1.0, -0.5, 1.0, 0.0, 0.0, 1.0, 2, 0.0)
    quad_cand = EdgeCandidate("x^2", 1.0, 0.0, 0.5, 0.1, 0.01, 0.9999, 2, 0.0)
    fits = {term.key: EdgeFit(0, 0, 0, "sqrt", 1.0, [sqrt_cand, quad_cand])}
    assert not np.isfinite(evaluate_terms([term], [np.array([0.0])], box)[0]).all()
    terms, consts = defined_on_box([term], [np.array([0.0])], box, (x_fit, y_fit), fits, 20)
    assert [t.function for t in terms] == ["x^2"]
    assert np.isfinite(evaluate_terms(terms, consts, box)[0]).all()
    assert fits[term.key].function == "x^2" and "undefined inside" in fits[term.key].note
