"""One registry of library functions, which every part of the symbolic stage reads."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from emp_kan.kan import adapter
from emp_kan.symbolic.edge_fit import check_library, fit_edge
from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.registry import (
    companions,
    library_function,
    library_names,
    register_function,
    unregister_function,
)
from emp_kan.symbolic.search import fit_formula

X = sp.Symbol("x")


@pytest.mark.parametrize("name", [*library_names(), *companions("exp")])
def test_every_builtin_agrees_with_itself_in_numpy_sympy_and_derivative(name):
    entry = library_function(name)
    u = np.linspace(0.2, 0.9, 7)  # inside every built-in's domain
    expected = np.array([float(entry.sympy(sp.Float(v))) for v in u])
    np.testing.assert_allclose(entry.numpy(u), expected, rtol=1e-9, atol=1e-12)
    h = 1e-6
    slope = (entry.numpy(u + h) - entry.numpy(u - h)) / (2 * h)
    np.testing.assert_allclose(entry.derivative(u), slope, rtol=1e-5, atol=1e-6)


def test_the_product_searchs_exp_forms_are_entries_but_no_library_names():
    assert companions("exp") == ("exp(x)-1", "cosh")
    for name in companions("exp"):
        assert name not in library_names() and library_function(name).kernel is not None
    with pytest.raises(ValueError, match="unknown library function"):
        check_library(("x", "cosh"))


def test_of_two_equally_complex_functions_the_algebraic_ranks_first():
    for simpler, other in (("x^2", "sin"), ("1/x", "exp"), ("sqrt", "log"), ("tanh", "tan")):
        a, b = library_function(simpler), library_function(other)
        assert a.complexity == b.complexity and a.rank < b.rank


@pytest.fixture
def hypot1():
    entry = register_function("hypot1", "sqrt(x**2 + 1)", complexity=3, total=True)
    yield entry
    unregister_function("hypot1")


def test_a_registered_function_gets_every_form_from_its_sympy_form(hypot1):
    u = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(hypot1.numpy(u), np.sqrt(u**2 + 1))
    np.testing.assert_allclose(hypot1.derivative(u), u / np.sqrt(u**2 + 1))
    assert sp.simplify(hypot1.sympy(2 * X) - sp.sqrt(4 * X**2 + 1)) == 0
    t = torch.linspace(-2, 2, 9, requires_grad=True)
    hypot1.torch(t).sum().backward()
    assert torch.allclose(t.grad, t.detach() / torch.sqrt(t.detach() ** 2 + 1))
    assert "hypot1" in library_names() and check_library(("x", "hypot1"))


def test_the_edge_fit_finds_a_registered_function(hypot1):
    x = np.linspace(-1, 1, 200)
    y = 2.0 * np.sqrt((1.5 * x) ** 2 + 1) - 0.5
    best = fit_edge(x, y, (*DEFAULT_LIBRARY, "hypot1"))[0]
    assert best.function == "hypot1" and best.r2 > 0.999999


def test_the_symbolic_stage_puts_a_registered_function_on_a_pykan_edge(hypot1):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(300, 1, generator=gen) * 4 - 2
    y = torch.sqrt(x**2 + 1)
    data = {
        "train_input": x[:200],
        "train_label": y[:200],
        "test_input": x[200:],
        "test_label": y[200:],
    }
    model = adapter.make_kan([1, 1], grid=5, k=3, seed=0)
    adapter.fit(model, data, 20, 0.0, seed=0)
    formula = fit_formula(model, data, variables=["x"], library=("x", "x^2", "hypot1"))
    assert str(formula.expression) == "sqrt(x**2 + 1)"
    assert formula.edges[0].function == "hypot1"
    assert "sqrt" in formula.edges[0].latex()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sin", "x"), "built-in"),
        (("9lives", "x"), "letters, digits"),
        (("two", "x*y"), "function of x alone"),
        (("const", "2"), "function of x alone"),
        (("bad", "__import__('os')"), "cannot read"),
    ],
)
def test_bad_registrations_are_refused_with_the_reason(args, message):
    with pytest.raises(ValueError, match=message):
        register_function(*args, complexity=2)
    with pytest.raises(ValueError, match="complexity"):
        register_function("fine", "x**2", complexity=0)
    assert "fine" not in library_names()


def test_a_name_is_registered_once_unless_replaced(hypot1):
    with pytest.raises(ValueError, match="already registered"):
        register_function("hypot1", "sqrt(x**2 + 4)", complexity=3)
    register_function("hypot1", "sqrt(x**2 + 4)", complexity=3, replace=True)
    assert library_function("hypot1").numpy(np.array([0.0]))[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="built-in"):
        unregister_function("exp")


def test_a_formula_object_is_never_turned_into_a_string_and_run(tmp_path):
    class Sneaky:  # sympify would evaluate str(self) as Python
        def __str__(self):
            return f"__import__('pathlib').Path('{tmp_path}/PWNED').touch()"

    with pytest.raises(ValueError, match="string or a sympy expression"):
        register_function("sneaky", Sneaky(), complexity=2)
    assert not (tmp_path / "PWNED").exists() and "sneaky" not in library_names()
    entry = register_function("cube1", X**3 + 1, complexity=3)  # a sympy expression is fine
    try:
        assert entry.numpy(np.array([2.0]))[0] == pytest.approx(9.0)
    finally:
        unregister_function("cube1")
