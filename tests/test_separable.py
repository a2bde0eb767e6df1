"""A power law times one function of one input or of a monomial, fitted straight to the data."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan.data.problems import formula_problem
from emp_kan.data.split import Split
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.discover import discover
from emp_kan.symbolic.formula import SymbolicFormula
from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.products.fit import fit_products
from emp_kan.symbolic.products.search import product_formulas
from emp_kan.symbolic.recovery import is_exact_recovery


def _placeholder(variables):
    symbols = [sp.Symbol(v, real=True) for v in variables]
    return SymbolicFormula(
        expression=sp.Integer(0),
        variables=symbols,
        test_rmse=np.inf,
        test_r2=-np.inf,
        train_rmse=np.inf,
        spline_test_rmse=np.nan,
        complexity=1,
        edges=[],
        explains_data=False,
        seconds=0.0,
    )


def _exact(law, ranges, samples=240):
    problem = formula_problem(law, ranges, samples=samples)
    found = product_formulas(
        _placeholder(problem.variables),
        Split.of(problem.dataset, 0.2),
        list(range(len(problem.variables))),
        DEFAULT_LIBRARY,
    )
    assert found, "no candidate at all"
    return problem, [
        f
        for f in found
        if is_exact_recovery(
            f.expression, problem.truth, problem.variables, test_r2=f.test_r2, ranges=problem.ranges
        )
    ]


@pytest.mark.parametrize(
    "law, ranges",
    [
        # sin changes sign on the data, so the log route cannot take it; r and F have both signs
        ("F*r*sin(theta)", "F=-1:1,r=-1:1,theta=0:6"),
        ("p*cos(theta)/(4*pi*e*r**2)", "p=0.5:2,theta=0:6,e=0.5:2,r=0.5:2"),
        # a power of an affine, and a power of a shifted sine
        ("s/(e*(c + 1))", "s=0.5:2,e=0.5:2,c=0.5:2"),
        ("a/sin(t/2)**4", "a=0.5:2,t=0.5:3"),
        # a function of a monomial whose factors explain nothing alone
        ("n*exp(-g*m*x/(T*k))", "n=1:3,g=1:2,m=1:2,x=1:2,T=1:2,k=1:2"),
        ("T*k*n*log(V/W)", "T=1:2,k=1:2,n=1:2,V=1:3,W=1:3"),
        # a root of 1 minus a ratio of squares, and the exp-family factors of statistical physics
        ("m/sqrt(1 - v**2/c**2)", "m=1:5,v=1:2,c=3:10"),
        ("h*w/(exp(h*w/(k*T)) - 1)", "h=1:5,w=1:5,k=1:5,T=1:5"),
        ("n/cosh(B*u/(k*T))", "n=1:5,B=1:5,u=1:5,k=1:5,T=1:5"),
        # one input (a law of one dimensionless group): its own power times a function of it
        ("x/(exp(x) - 1)", "x=0.2:5"),
        ("x**3/(exp(x) - 1)", "x=0.2:5"),
        # the argument over the inputs outside the whole powers: a square among six inputs,
        # and five of eight inputs in the argument of a power factor times a sum
        ("a*b**2*c*d*w**4/(w**2 - u**2)**2", "a=1:2,b=1:2,c=1:2,d=1:2,w=1:2,u=3:5"),
        ("m*(B + M*a/(c**2*e))/(T*k)", "m=1:5,T=1:5,k=1:5,B=1:5,M=1:5,a=1:5,c=1:5,e=1:5"),
    ],
)
def test_a_power_law_times_a_function_is_recovered_exactly(law, ranges):
    problem, exact = _exact(law, ranges)
    assert exact, f"{law} not recovered"
    assert exact[0].test_rmse < 1e-4 * float(problem.dataset["test_label"].std())


def test_an_input_the_law_does_not_use_gets_no_factor():
    rng = np.random.default_rng(1)
    rows = np.column_stack(
        [rng.uniform(0.5, 2, 300), rng.uniform(0, 6, 300), rng.uniform(1, 3, 300)]
    )
    labels = rows[:, 0] * np.sin(rows[:, 1])
    found = product_formulas(
        _placeholder(["x", "y", "z"]),
        Split.of(_dataset(rows, labels, 200), 0.2),
        [0, 1, 2],
        DEFAULT_LIBRARY,
    )
    x, y, z = sp.symbols("x y z", real=True)
    assert sp.simplify(found[0].expression - x * sp.sin(y)) == 0
    assert not found[0].expression.has(z)


def test_rows_where_the_label_is_zero_are_skipped_not_fatal():
    x = np.linspace(0.5, 2.0, 120).reshape(-1, 1) * np.ones((1, 2))
    x[:, 1] = np.linspace(-3, 3, 120)
    y = x[:, 0] * x[:, 1]  # 0 nowhere but close to it; force exact zeros too
    y[::10] = 0.0
    fits = fit_products(x, y, [0, 1], DEFAULT_LIBRARY)
    assert fits and all(np.isfinite(f.log_rmse) for f in fits)


def _dataset(rows: np.ndarray, labels: np.ndarray, n_train: int) -> dict[str, torch.Tensor]:
    def tensor(a):
        return torch.tensor(a, dtype=torch.float32)

    return {
        "train_input": tensor(rows[:n_train]),
        "train_label": tensor(labels[:n_train, None]),
        "test_input": tensor(rows[n_train:]),
        "test_label": tensor(labels[n_train:, None]),
    }


# From frequency 0.5 up, v in [0.2, 3] spans more than a quarter period. Below that, a power of
# a shifted sine with another frequency fits to 1e-4 in log space, and the search (a grid and
# local polish) may stop there: a limit of the method, not what this test pins down.
@settings(max_examples=15, deadline=None)
@given(st.sampled_from([1, 2, -1, -2]), st.floats(0.5, 3.0), st.sampled_from(["sin", "cos"]))
def test_the_fit_finds_the_power_and_the_frequency(power, frequency, name):
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.uniform(0.5, 2, 300), rng.uniform(0.2, 3.0, 300)])
    labels = 1.5 * rows[:, 0] ** power * getattr(np, name)(frequency * rows[:, 1] + 0.3)
    found = product_formulas(
        _placeholder(["u", "v"]),
        Split.of(_dataset(rows, labels, 200), 0.2),
        [0, 1],
        DEFAULT_LIBRARY,
    )
    assert found[0].test_rmse < 1e-4 * float(np.std(labels))
    u = sp.Symbol("u", real=True)
    assert not sp.powsimp(found[0].expression / u**power).has(u)  # the power came out whole


def test_discover_offers_the_product_and_chooses_it_on_validation_rows():
    problem = formula_problem("x*sin(y)", "x=-1:1,y=0:6", samples=200)
    config = DiscoverConfig(hidden=(2,), grid=3, steps=10, round_steps=5, rounds=1, compare=False)
    report, runs = discover(problem, config)
    names = [c["candidate"] for c in report["candidates"]]
    assert "product-1" in names
    assert report["candidate"].startswith("product-")
    assert is_exact_recovery(
        runs["emp"].formula.expression, problem.truth, problem.variables, ranges=problem.ranges
    )


def test_a_function_held_at_its_asymptote_is_not_offered_as_a_law():
    from emp_kan.symbolic.products.fit import linearised
    from emp_kan.symbolic.products.forms import ProductFit

    x = np.linspace(0.5, 2.0, 50).reshape(-1, 1)

    def fit(function, a, b):
        return ProductFit(
            argument=((0, 1),),
            function=function,
            a=a,
            b=b,
            c=-1.2,
            exponents={},
            log_scale=0.0,
            log_rmse=0.0,
        )

    assert linearised(fit("cosh", 0.4, 20.0), x)  # cosh(20 + 0.4 x) is exp(...)/2 there
    assert linearised(fit("exp", 1e-4, 0.0), x)  # a line, not an exponential
    # exp(-0.02*z - 1.4)**50 is exp(-z - 70): an exponential whose scale sits in the power
    assert not linearised(dataclasses.replace(fit("exp", -0.02, -1.4), c=50.0), x)
    assert not linearised(fit("cosh", 1.0, 0.0), x)
    assert not linearised(fit("sin", 2.0, 0.3), x)


def test_discover_searches_products_once_for_both_methods(caplog):
    problem = formula_problem("x*sin(y)", "x=-1:1,y=0:6", samples=200)
    # One after the other in one process: side by side each process searches on its own CPU.
    config = DiscoverConfig(
        hidden=(2,), grid=3, steps=10, round_steps=5, rounds=1, route="none", workers=1
    )
    with caplog.at_level(logging.INFO, logger="emp_kan"):
        report, _ = discover(problem, config)
    shared = [r.getMessage() for r in caplog.records if "work shared" in r.getMessage()]
    assert len(shared) == 1 and "1 products" in shared[0]

    def products(candidates):
        return {
            c["candidate"]: c["formula"]
            for c in candidates
            if c["candidate"].startswith("product-")
        }

    assert products(report["candidates"]) == products(report["baseline"]["candidates"])
    assert products(report["candidates"])
