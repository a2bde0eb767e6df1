"""The formula parser: sympy expressions from user strings, with no Python ever run."""

from __future__ import annotations

import os

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan.data.formula_parse import MAX_LENGTH, as_expression, parse_formula

HOSTILE = [
    "__import__('os').system('touch PWNED')",
    "__import__",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "eval('1')",
    'exec(\'open("PWNED", "w")\')',
    "open('PWNED', 'w').write('x')",
    "lambda: 0",
    "(lambda f: f)(x)",
    "x[0]",
    "x if y else z",
    "[x for x in range(10**9)]",
    "{'a': 1}",
    "'string'",
    "b'bytes'",
    "f'{x}'",
    "x == y",
    "x and y",
    "sin(x, key=1)",
    "sin(*x)",
    "sin.__globals__",
    "getattr(x, 'y')",
    "__builtins__",
    "_x + 1",
    "9**9**9**9",
    "10**10**10",
    "2.0**1e300",
    "1e999",
    "x" * (MAX_LENGTH + 1),
    "(" * 500 + "x" + ")" * 500,
    "x; import os",
    "x\nimport os",
    "True",
    "None",
    "1j",
    "...",
    "x @ y",
    "x % y",
    "x // y",
    "x << 2",
    "~x",
    "not x",
    "x := 1",
    "yield x",
    "await x",
    "\x00",
    "",
    "   ",
]


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Run in an empty folder so that any file a formula manages to create shows up."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_formulas_are_refused_without_side_effects(text, sandbox, capsys):
    with pytest.raises(ValueError, match="formula"):
        parse_formula(text)
    assert list(sandbox.iterdir()) == []
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x*exp(-y)", "x*exp(-y)"),
        ("0.5*k*x^2", "0.5*k*x**2"),
        ("q/(4*pi*epsilon*r**2)", "q/(4*pi*epsilon*r**2)"),
        ("sqrt(gamma*p/rho)", "sqrt(gamma*p/rho)"),
        ("-x**-2 + E", "-1/x**2 + E"),
        ("exp(sin(pi*x) + y**2)", "exp(sin(pi*x) + y**2)"),
        ("arctan(x) + ln(y) + abs(z)", "atan(x) + log(y) + Abs(z)"),
        ("1e-3*x", "0.001*x"),
    ],
)
def test_formulas_parse_as_sympy_would_read_them(text, expected):
    symbols = {n: sp.Symbol(n) for n in ("x", "y", "z", "k", "q", "epsilon", "r", "p", "rho")}
    symbols["gamma"] = sp.Symbol("gamma")
    want = sp.parse_expr(expected, local_dict=symbols)  # trusted, test-owned strings only
    got = parse_formula(text)
    assert sp.simplify(got - want) == 0


def test_names_that_sympy_reserves_are_plain_symbols():
    # sympify("gamma") is the gamma function and "I" the imaginary unit; users mean variables.
    expr = parse_formula("gamma*I*beta*S*N*Q")
    assert all(isinstance(s, sp.Symbol) for s in expr.free_symbols)
    assert {s.name for s in expr.free_symbols} == {"gamma", "I", "beta", "S", "N", "Q"}


def test_long_but_valid_input_parses():
    assert parse_formula("-" * 900 + "x") == sp.Symbol("x")
    assert parse_formula("+".join(["x"] * 300)) == 300 * sp.Symbol("x")


def test_error_names_the_offending_piece():
    with pytest.raises(ValueError, match="unknown function 'foo'"):
        parse_formula("x + foo(x)")
    with pytest.raises(ValueError, match=r"attribute access at column 1 \('os.system'\)"):
        parse_formula("os.system")
    with pytest.raises(ValueError, match="sin is a function"):
        parse_formula("sin + x")


def test_as_expression_refuses_objects_sympify_would_stringify():
    class Sneaky:
        def __str__(self):  # sympify(obj) falls back to parsing str(obj)
            return "__import__('os').system('touch PWNED')"

    with pytest.raises(TypeError):
        as_expression(Sneaky())
    x = sp.Symbol("x")
    assert as_expression(x + 1) == x + 1
    assert as_expression(2) == 2
    import numpy as np

    assert as_expression(np.float64(0.5)) == sp.Float(0.5) and as_expression(np.int64(3)) == 3

    class SneakyFloat(float):
        def __str__(self):
            return "__import__('os').system('touch PWNED')"

    assert as_expression(SneakyFloat(1.5)) == sp.Float(1.5)
    assert as_expression("x+1") == x + 1


_ALPHABET = st.sampled_from(
    list("xyzab019.+-*/^()_ ,'\"[]{}:;=!<>@%&|~`\\\n\t")
    + [
        "**",
        "sin",
        "exp",
        "log",
        "sqrt",
        "pi",
        "E",
        "__",
        "import",
        "lambda",
        "os",
        "eval",
        "e9",
        "1e308",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join) | st.text(max_size=60))
def test_random_strings_give_an_expression_or_a_value_error(text):
    cwd_before = sorted(os.listdir("."))
    try:
        expr = parse_formula(text)
    except ValueError:
        pass
    else:
        assert isinstance(expr, sp.Expr)
    assert sorted(os.listdir(".")) == cwd_before


def test_python_keywords_are_variable_names():
    # Feynman's wavelength is called lambda; the formula must read, and read back, with it.
    expr = parse_formula("asin(lambda/(d*n))")
    assert {str(s) for s in expr.free_symbols} == {"lambda", "d", "n"}
    assert parse_formula(str(expr)) == expr
    with pytest.raises(ValueError, match="'lambda x: x'"):
        parse_formula("lambda x: x")  # a keyword used as Python still fails, and says so
