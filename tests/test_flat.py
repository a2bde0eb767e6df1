"""Functions used as their own Taylor polynomial: a fit that drives a function's argument to a
sliver of its range names a function the law does not hold, and does not win the choice."""

from __future__ import annotations

import numpy as np
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan.data.formula_parse import as_expression
from emp_kan.symbolic.flat import flat_functions

S = sp.Symbol("S")
ROWS = np.random.default_rng(0).uniform(0, 5, (300, 1))


def test_a_sine_on_a_sliver_of_its_argument_is_flat():
    # Michaelis-Menten 2*S/(S + 1/2) as a product search fitted it at 1% noise
    degenerate = as_expression("0.0165*S/sin(0.00825*S + 0.0041)")
    assert flat_functions(degenerate, [S], ROWS) == ["sin(0.00825*S + 0.0041)"]
    # a root of a sum that hardly moves, inside a cosine that does
    rooted = as_expression("23.2*cos(31.03*sqrt(1 - 0.0042*S) + 1) - 22")
    assert flat_functions(rooted, [S], ROWS) == ["sqrt(1 - 0.0042*S)"]


def test_the_laws_own_functions_are_not_flat():
    for law in ("2*S/(S + 1/2)", "sin(S) + sin(3*S)/3", "sqrt(S + 1)", "log(S + 1)", "exp(-S)"):
        assert flat_functions(as_expression(law), [S], ROWS) == [], law


@settings(max_examples=40, deadline=None)
@given(st.floats(0.05, 5.0).filter(lambda a: abs(a - 0.1) > 1e-6), st.floats(-3.0, 3.0))
def test_an_argument_is_flat_exactly_when_it_spans_less_than_a_tenth(a, b):
    expr = sp.cos(sp.Float(a) * S + sp.Float(b))
    x = np.linspace(0.0, 1.0, 50)[:, None]
    assert bool(flat_functions(expr, [S], x)) == (a < 0.1)


def test_rows_where_the_argument_cannot_be_evaluated_judge_nothing():
    assert flat_functions(as_expression("log(S - 10)"), [S], ROWS) == []
    assert flat_functions(as_expression("sin(S)"), [S], ROWS[:1]) == []
