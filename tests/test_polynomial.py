"""The sparse polynomial fit: sums of products and roots of sums of squares, found from their
samples and, through ``discover``, chosen over what a tiny KAN reads."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan import formula_problem
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.discover import discover
from emp_kan.symbolic.polynomial import (
    MAX_FEATURES,
    designs,
    monomials,
    polynomial_expression,
    rational_expression,
    sparse_polynomials,
    sparse_rationals,
)
from emp_kan.symbolic.recovery import is_exact_recovery
from tests.conftest import count_calls


def _samples(law, names, low=1.0, high=5.0, rows=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, (rows, len(names)))
    fn = sp.lambdify(sp.symbols(names), law, "numpy")
    y = np.asarray(fn(*x.T), dtype=float) * np.ones(rows)
    split = rows * 4 // 5
    return x[:split], y[:split], x[split:], y[split:]


def _best(law, names, **kwargs):
    x_fit, y_fit, x_val, y_val = _samples(law, names, **kwargs)
    fits = sparse_polynomials(x_fit, y_fit, x_val, y_val)
    assert fits
    sign = 1 if (y_fit > 0).all() else -1
    return fits[0], polynomial_expression(fits[0], sp.symbols(names), sign)


def _rounded(expr):
    return sp.nsimplify(expr, tolerance=1e-6, rational=True)


@settings(max_examples=15, deadline=None)
@given(
    n_inputs=st.integers(2, 4),
    terms=st.lists(
        st.tuples(
            st.lists(st.integers(0, 2), min_size=4, max_size=4),
            st.integers(-3, 3).filter(lambda c: c != 0),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_a_sparse_polynomial_of_integer_coefficients_is_recovered(n_inputs, terms):
    names = [f"x{i}" for i in range(n_inputs)]
    symbols = sp.symbols(names)
    # degree at most 3: the term sets reach degree 4 only on few inputs
    law = sp.Add(
        *(
            c * sp.Mul(*(s**e for s, e in zip(symbols, exps, strict=False)))
            for exps, c in terms
            if sum(exps[:n_inputs]) <= 3
        )
    )
    if not law.free_symbols:
        return
    fit, found = _best(law, names, low=-2.0, high=2.0)
    assert fit.val_rmse < 1e-8
    assert is_exact_recovery(_rounded(found), law, names, ranges=[(-2.0, 2.0)] * n_inputs)
    # the fewest terms: no more than the law's monomials
    assert len(fit.support) <= len(sp.Add.make_args(sp.expand(law)))


@pytest.mark.parametrize(
    "law, names",
    [
        ("x1*y1 + x2*y2 + x3*y3", "x1 x2 x3 y1 y2 y3"),
        ("m*(u**2 + v**2 + w**2)/2", "m u v w"),
        ("sqrt((x2 - x1)**2 + (y2 - y1)**2)", "x1 x2 y1 y2"),
        ("mu*sqrt(Bx**2 + By**2 + Bz**2)", "mu Bx By Bz"),
        ("beta*(1 + alpha*cos(theta))", "alpha beta theta"),
        ("I1 + I2 + 2*sqrt(I1*I2)*cos(delta)", "I1 I2 delta"),
        ("q*(E + B*v*sin(theta))", "q E B v theta"),
        ("1/(a**2 + a*b + 2)", "a b"),
    ],
)
def test_feynman_shapes_a_small_kan_cannot_fit_are_recovered(law, names):
    names = names.split()
    truth = sp.sympify(law, locals={n: sp.Symbol(n) for n in names})
    _, found = _best(truth, names)
    ranges = [(1.0, 5.0)] * len(names)
    assert is_exact_recovery(_rounded(found), truth, names, ranges=ranges), found


@pytest.mark.parametrize(
    "law, ranges",
    [
        (
            "n*(1 + Ef*p*cos(theta)/(T*k))",
            {
                "n": (0, 1),
                "p": (-1, 1),
                "Ef": (-1, 1),
                "theta": (0, 6.3),
                "T": (0.5, 2),
                "k": (0.5, 2),
            },
        ),
        (
            "mu*(B + M*alpha/(c**2*eps))/(T*k)",
            {
                "mu": (0, 1),
                "B": (0, 1),
                "k": (0.5, 2),
                "T": (0.5, 2),
                "alpha": (0, 1),
                "M": (0, 1),
                "eps": (0.5, 2),
                "c": (0.5, 2),
            },
        ),
    ],
)
def test_terms_that_share_a_factor_are_found_beyond_the_plain_term_sets(law, ranges):
    # terms of degree 5 and 6 (with a cosine): beyond every plain term set, within a small
    # box around the factor every term shares
    names = list(ranges)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(*ranges[name], 300) for name in names])
    truth = sp.sympify(law, locals={n: sp.Symbol(n) for n in names})
    y = sp.lambdify(sp.symbols(names), truth, "numpy")(*x.T)
    fits = sparse_polynomials(x[:240], y[:240], x[240:], y[240:])
    found = polynomial_expression(fits[0], sp.symbols(names), 1 if (y > 0).all() else -1)
    assert is_exact_recovery(_rounded(found), truth, names, ranges=list(ranges.values())), found


def test_a_cosine_of_the_difference_of_two_angles_is_a_term():
    # the law of cosines (Feynman eq. 29 and its ranges): lengths across zero, whole turns
    rng = np.random.default_rng(0)
    x = np.column_stack(
        [rng.uniform(-1, 1, 300), rng.uniform(-1, 1, 300), *rng.uniform(0, 2 * np.pi, (2, 300))]
    )
    y = np.sqrt(x[:, 0] ** 2 - 2 * x[:, 0] * x[:, 1] * np.cos(x[:, 2] - x[:, 3]) + x[:, 1] ** 2)
    fits = sparse_polynomials(x[:240], y[:240], x[240:], y[240:])
    names = ["x1", "x2", "t1", "t2"]
    found = polynomial_expression(fits[0], sp.symbols(names), 1)
    truth = sp.sympify("sqrt(x1**2 - 2*x1*x2*cos(t1 - t2) + x2**2)")
    ranges = [(-1, 1), (-1, 1), (0, 2 * math.pi), (0, 2 * math.pi)]
    assert fits[0].transform == "square"
    assert is_exact_recovery(_rounded(found), truth, names, ranges=ranges), found


@pytest.mark.parametrize(
    "law, names, low, high",
    [
        ("(m1*r1 + m2*r2)/(m1 + m2)", "m1 m2 r1 r2", 1.0, 5.0),
        ("alpha*n/(1 - alpha*n/3) + 1", "alpha n", 0.0, 1.0),
        ("sqrt(x/(x + y**2))", "x y", 1.0, 5.0),
    ],
)
def test_a_sparse_ratio_of_polynomials_is_recovered(law, names, low, high):
    names = names.split()
    truth = sp.sympify(law, locals={n: sp.Symbol(n) for n in names})
    x_fit, y_fit, x_val, y_val = _samples(truth, names, low=low, high=high)
    fits = sparse_rationals(x_fit, y_fit, x_val, y_val)
    assert fits and fits[0].val_rmse < 1e-8
    found = rational_expression(fits[0], sp.symbols(names), 1)
    ranges = [(low, high)] * len(names)
    assert is_exact_recovery(_rounded(found), truth, names, ranges=ranges), found
    # a polynomial is left to sparse_polynomials: no ratio with a constant denominator
    x_fit, y_fit, x_val, y_val = _samples(sp.sympify("x*y + 2"), ["x", "y"])
    assert all(
        f.denominator[1] or f.normaliser for f in sparse_rationals(x_fit, y_fit, x_val, y_val)
    )


def test_noise_keeps_the_terms_and_moves_the_constants_by_about_the_noise():
    names = ["x1", "x2", "y1", "y2"]
    truth = sp.sympify("x1*y1 + x2*y2")
    x_fit, y_fit, x_val, y_val = _samples(truth, names, rows=500)
    rng = np.random.default_rng(1)
    noise = 0.01 * y_fit.std()
    fits = sparse_polynomials(x_fit, y_fit + noise * rng.normal(size=y_fit.size), x_val, y_val)
    best = fits[0]
    assert best.transform == "identity" and len(best.support) == 2
    assert np.allclose(best.coefficients, 1.0, rtol=0.02)
    assert best.val_rmse < 2 * noise


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_negative_exponents_of_inputs_away_from_zero_are_terms(noise):
    # the Doppler shift omega_0/(1 - v/c) is 1/y = 1/omega_0 - v/(c*omega_0): two terms of
    # the reciprocals, found through their correlated neighbours even at 1% noise
    names = ["c", "omega_0", "v"]
    truth = sp.sympify("omega_0/(1 - v/c)")
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(3, 10, 500), rng.uniform(1, 5, 500), rng.uniform(1, 2, 500)])
    y = x[:, 1] / (1 - x[:, 2] / x[:, 0])
    y = y + noise * y.std() * rng.standard_normal(500)
    best = sparse_polynomials(x[:400], y[:400], x[400:], y[400:])[0]
    assert best.transform == "reciprocal" and best.n_terms == 2
    pairs = zip(best.support, best.coefficients, strict=True)
    terms = {tuple(best.columns.exponents[j]): c for j, c in pairs}
    assert set(terms) == {(0.0, -1.0, 0.0), (-1.0, -1.0, 1.0)}
    assert np.allclose([terms[(0.0, -1.0, 0.0)], terms[(-1.0, -1.0, 1.0)]], [1, -1], atol=0.02)
    if noise == 0:
        found = polynomial_expression(best, sp.symbols(names), 1)
        assert is_exact_recovery(found, truth, names, test_r2=1.0)
    # an input that reaches 0 never enters as its reciprocal
    x[:, 1] = rng.uniform(0, 5, 500)
    for columns in designs(3, 400, reciprocals=(True, False, True)):
        assert (columns.exponents[:, 1] >= 0).all()


def test_the_term_sets_stay_within_the_rows_and_the_cap():
    for n_inputs in range(1, 10):
        for rows in (30, 300, 3000):
            for columns in designs(n_inputs, rows, reciprocals=(True,) * n_inputs):
                assert len(columns) <= min(MAX_FEATURES, rows // 3)
    assert designs(9, 30) == [] or all(len(c) <= 10 for c in designs(9, 30))
    # every column is a distinct term
    columns = monomials(3, 3, 2)
    keys = {(tuple(e), t) for e, t in zip(columns.exponents, columns.trig, strict=True)}
    assert len(keys) == len(columns)


def test_labels_of_mixed_sign_are_not_given_roots():
    x_fit, y_fit, x_val, y_val = _samples(sp.sympify("x - y"), ["x", "y"])
    fits = sparse_polynomials(x_fit, y_fit, x_val, y_val)
    assert not {f.transform for f in fits} & {"square", "inverse-square"}
    assert fits[0].transform == "identity"


def test_discover_chooses_the_polynomial_where_the_tiny_kan_cannot_fit_the_law():
    law = "x1*y1 + x2*y2 + x3*y3"
    ranges = ",".join(f"{n}=1:5" for n in "x1 x2 x3 y1 y2 y3".split())
    problem = formula_problem(law, ranges, samples=300, seed=0)
    config = DiscoverConfig(hidden=(3,), steps=20, rounds=1, compare=False, workers=1)
    report, _ = discover(problem, config)
    assert report["exact"], report["formula"]
    assert report["family"] == "polynomial fit"
    assert math.isfinite(report["test_rmse"])
    # the KAN-only switch leaves the polynomial out
    kan_only, _ = discover(problem, replace(config, candidates="kan"))
    assert all(c["family"] != "polynomial fit" for c in kan_only["candidates"])


def test_both_methods_share_one_polynomial_fit_of_the_same_rows(monkeypatch):
    import emp_kan.discovery.candidates as candidates

    calls = count_calls(monkeypatch, candidates, "sparse_polynomials")
    law = "x1*y1 + x2*y2 + x3*y3"
    ranges = ",".join(f"{n}=1:5" for n in "x1 x2 x3 y1 y2 y3".split())
    problem = formula_problem(law, ranges, samples=300, seed=0)
    config = DiscoverConfig(hidden=(3,), steps=20, rounds=1, workers=1, route="none")
    report, _ = discover(problem, config)
    assert report["baseline"]["method"] == "threshold"
    for method in (report, report["baseline"]):
        families = {c["family"] for c in method["candidates"]}
        assert method["exact"] and "polynomial fit" in families
    assert calls == [1]
