"""With units, N(x) times a sparse polynomial of the dimensionless groups, fitted on the label
in its own units: the laws whose groups' label y/N is swamped by noise where N is small."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan.data.feynman_units import feynman_units
from emp_kan.data.problems import feynman_problem, with_label_noise, with_units
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.discover import method_runs
from emp_kan.discovery.run import _chosen_in_label_units
from emp_kan.symbolic.formula import SymbolicFormula
from emp_kan.symbolic.group_polynomial import (
    group_columns,
    group_polynomial_expression,
    group_polynomials,
)
from emp_kan.symbolic.recovery import is_exact_recovery


def _halves(rng: np.random.Generator, *columns: np.ndarray, noise: float, y: np.ndarray):
    """Fit and validation halves of the groups, N and y with noise of ``noise * std(y)``."""
    y = y + noise * float(np.std(y)) * rng.standard_normal(len(y))
    cut = len(y) * 3 // 4
    return [part for c in (*columns, y) for part in (c[:cut], c[cut:])]


def _fit(groups, normaliser, y):
    (g_fit, g_val), (n_fit, n_val), (y_fit, y_val) = (
        (groups[0], groups[1]),
        (normaliser[0], normaliser[1]),
        (y[0], y[1]),
    )
    return group_polynomials(g_fit, n_fit, y_fit, g_val, n_val, y_val)


def _reads(fit, names, normaliser_symbol, expected, values: dict) -> None:
    """``fit``'s expression equals ``expected`` at ``values`` (within 1%) and holds the same
    symbols."""
    symbols = [sp.Symbol(n) for n in names]
    expr = group_polynomial_expression(fit, symbols, normaliser_symbol)
    assert expr.free_symbols == expected.free_symbols
    got = float(expr.subs(values))
    want = float(expected.subs(values))
    assert got == pytest.approx(want, rel=1e-2)


def test_with_no_group_the_law_is_a_constant_times_the_normaliser():
    rng = np.random.default_rng(0)
    n = rng.uniform(-3.0, 3.0, 200)
    data = _halves(rng, np.zeros((200, 0)), n, noise=0.01, y=-0.25 * n)
    fits = _fit(data[0:2], data[2:4], data[4:6])
    n_s = sp.Symbol("N")
    for fit in fits:  # y, y**2, 1/y and 1/y**2 all read the same law
        assert fit.n_terms == 1
        _reads(fit, [], n_s, -0.25 * n_s, {n_s: 1.5})


def test_rows_are_weighed_by_their_own_noise_not_their_noise_over_n():
    """y = N * c / pi**2 with N over six decades: y/N on the small-N rows is noise alone, but
    the fit on y reads c."""
    rng = np.random.default_rng(1)
    pi = rng.uniform(1.0, 5.0, 300)
    n = 10.0 ** rng.uniform(-3.0, 3.0, 300)
    y = n * (-0.003) / pi**2
    data = _halves(rng, pi[:, None], n, noise=0.01, y=y)
    best = _fit(data[0:2], data[2:4], data[4:6])[0]
    pi_s, n_s = sp.Symbol("pi_1"), sp.Symbol("N")
    _reads(best, ["pi_1"], n_s, -0.003 * n_s / pi_s**2, {pi_s: 2.0, n_s: 5.0})


def test_a_root_takes_its_sign_from_the_group_that_carries_it():
    """Relativistic momentum m0*v/sqrt(1 - v**2/c**2) as N = c*m0 times pi/sqrt(1 - pi**2),
    pi = v/c of both signs: 1/y**2 is N**-2 times a polynomial once N*pi replaces N."""
    rng = np.random.default_rng(2)
    pi = rng.uniform(-0.8, 0.8, 300)
    n = rng.uniform(1.0, 5.0, 300)
    y = n * pi / np.sqrt(1 - pi**2)
    data = _halves(rng, pi[:, None], n, noise=0.01, y=y)
    fits = _fit(data[0:2], data[2:4], data[4:6])
    best = fits[0]
    assert best.transform in ("inverse-square", "square")
    pi_s, n_s = sp.Symbol("pi_1"), sp.Symbol("N")
    expected = n_s * pi_s / sp.sqrt(1 - pi_s**2)
    for value in (-0.5, 0.3):
        _reads(best, ["pi_1"], n_s, expected, {pi_s: value, n_s: 2.0})


def test_a_root_of_a_sum_of_squares_keeps_the_labels_sign_where_n_changes_sign():
    """A distance in a plane: y = sqrt(y2**2 * P(x1/y2, x2/y2, y1/y2)) with y2 of both signs."""
    rng = np.random.default_rng(3)
    x1, x2, y1, y2 = (rng.uniform(-1.0, 1.0, 400) for _ in range(4))
    y2 = np.where(np.abs(y2) < 0.1, 0.5, y2)  # groups stay finite
    y = np.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2)
    groups = np.column_stack([x1 / y2, x2 / y2, y1 / y2])
    data = _halves(rng, groups, y2, noise=0.0, y=y)
    best = _fit(data[0:2], data[2:4], data[4:6])[0]
    assert best.transform == "square"
    assert best.val_rmse < 1e-8
    a, b, c, n_s = sp.symbols("pi_1 pi_2 pi_3 N")
    expected = sp.sqrt(n_s**2 * ((b - a) ** 2 + (1 - c) ** 2))
    _reads(best, ["pi_1", "pi_2", "pi_3"], n_s, expected, {a: 0.3, b: -0.7, c: 0.2, n_s: -0.8})


def test_a_ratio_of_polynomials_in_the_groups_is_read_as_one():
    """Compton scattering E/(1 + E*(1 - cos(theta))/(m*c**2)) as N = E over 1 + (1 -
    cos(theta))/pi with pi = m*c**2/E: a polynomial of 1/y, or a ratio of y's."""
    rng = np.random.default_rng(4)
    pi = rng.uniform(1.0, 5.0, 300)
    theta = rng.uniform(0.0, 3.0, 300)
    n = rng.uniform(1.0, 5.0, 300)
    y = n / (1 + (1 - np.cos(theta)) / pi)
    data = _halves(rng, np.column_stack([pi, theta]), n, noise=0.0, y=y)
    best = _fit(data[0:2], data[2:4], data[4:6])[0]
    assert best.val_rmse < 1e-8
    p_s, t_s, n_s = sp.symbols("pi_1 theta N")
    expected = n_s / (1 + (1 - sp.cos(t_s)) / p_s)
    _reads(best, ["pi_1", "theta"], n_s, expected, {p_s: 2.0, t_s: 1.0, n_s: 3.0})


def test_a_small_ratio_is_found_on_noisy_rows():
    """The centre of mass (m1*r1 + m2*r2)/(m1 + m2) at 1% noise: r2 * (1 + pi_1*pi_2) / (1 +
    pi_1) with pi_1 = m1/m2 and pi_2 = r1/r2, three terms."""
    rng = np.random.default_rng(6)
    m1, m2, r1, r2 = (rng.uniform(1.0, 5.0, 300) for _ in range(4))
    y = (m1 * r1 + m2 * r2) / (m1 + m2)
    data = _halves(rng, np.column_stack([m1 / m2, r1 / r2]), r2, noise=0.01, y=y)
    best = _fit(data[0:2], data[2:4], data[4:6])[0]
    assert best.n_terms == 3
    a, b, n_s = sp.symbols("pi_1 pi_2 N")
    expected = n_s * (1 + a * b) / (1 + a)
    _reads(best, ["pi_1", "pi_2"], n_s, expected, {a: 0.7, b: 2.0, n_s: 3.0})


def test_a_squared_sine_and_the_difference_of_two_angles_are_terms():
    """x_1*(alpha*cos(omega*t)**2 + cos(omega*t)) and d/(1 + alpha*cos(theta_1 - theta_2))."""
    rng = np.random.default_rng(5)
    alpha, phase, theta_1, theta_2 = (rng.uniform(0.5, 3.0, 300) for _ in range(4))
    n = rng.uniform(1.0, 5.0, 300)
    cases = [
        (np.column_stack([alpha, phase]), n * (alpha * np.cos(phase) ** 2 + np.cos(phase))),
        (
            np.column_stack([alpha, theta_1, theta_2]),
            n / (1 + 0.3 * alpha * np.cos(theta_1 - theta_2)),
        ),
    ]
    for groups, y in cases:
        data = _halves(rng, groups, n, noise=0.0, y=y)
        assert _fit(data[0:2], data[2:4], data[4:6])[0].val_rmse < 1e-8


def test_a_law_of_exp_of_a_polynomial_is_read_through_log_y():
    """A Gaussian exp(-theta**2/2)/sqrt(2*pi) at 1% noise: log|y| - log|N| is a polynomial,
    weighed by |y| (the rows near 0 are noise)."""
    rng = np.random.default_rng(7)
    theta = rng.uniform(-3.0, 3.0, 300)
    y = np.exp(-(theta**2) / 2) / np.sqrt(2 * np.pi)
    data = _halves(rng, theta[:, None], np.ones(300), noise=0.01, y=y)
    best = _fit(data[0:2], data[2:4], data[4:6])[0]
    assert best.transform == "log" and best.n_terms == 2
    t_s, n_s = sp.symbols("theta N")
    expected = n_s * sp.exp(-(t_s**2) / 2) / sp.sqrt(2 * sp.pi)
    for value in (0.0, 1.5):
        _reads(best, ["theta"], n_s, expected, {t_s: value, n_s: 1.0})


def test_a_gaussian_of_a_difference_over_a_width_carries_the_widths_power():
    """exp(-(theta - theta_1)**2/(2*sigma**2))/(sqrt(2*pi)*sigma), every input a pure
    number: log|y| is a constant, -log(sigma) and a squared difference over sigma**2."""
    rng = np.random.default_rng(8)
    theta, theta_1 = rng.uniform(-1.5, 1.5, 300), rng.uniform(-1.5, 1.5, 300)
    sigma = rng.uniform(0.5, 2.0, 300)
    y = np.exp(-((theta - theta_1) ** 2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
    groups = np.column_stack([theta, theta_1, sigma])
    data = _halves(rng, groups, np.ones(300), noise=0.0, y=y)
    best = _fit(data[0:2], data[2:4], data[4:6])[0]
    assert best.transform == "log" and best.n_terms == 3
    t_s, t1_s, s_s, n_s = sp.symbols("theta theta_1 sigma N")
    expected = n_s * sp.exp(-((t_s - t1_s) ** 2) / (2 * s_s**2)) / (sp.sqrt(2 * sp.pi) * s_s)
    for values in ((0.3, -0.4, 0.7), (1.0, 1.2, 1.9)):
        _reads(
            best,
            ["theta", "theta_1", "sigma"],
            n_s,
            expected,
            dict(zip((t_s, t1_s, s_s), values, strict=True)) | {n_s: 1.0},
        )


def test_a_dimensionless_angle_is_read_through_its_sine_or_cosine():
    """asin(pi_1/n) and the aberration acos((cos(theta) - pi_1)/(1 - pi_1*cos(theta))), y a
    pure number (N = 1): sin(y) and cos(y) are a monomial and a small ratio of the groups."""
    rng = np.random.default_rng(9)
    pi_1, n = rng.uniform(0.0, 0.9, 300), rng.uniform(1.0, 2.0, 300)
    theta = rng.uniform(0.0, np.pi, 300)
    p_s, n_s, t_s, one = sp.symbols("pi_1 n theta N")
    cases = [
        (np.column_stack([pi_1, n]), np.arcsin(pi_1 / n), ["pi_1", "n"], sp.asin(p_s / n_s)),
        (
            np.column_stack([theta, pi_1]),
            np.arccos((np.cos(theta) - pi_1) / (1 - pi_1 * np.cos(theta))),
            ["theta", "pi_1"],
            sp.acos((sp.cos(t_s) - p_s) / (1 - p_s * sp.cos(t_s))),
        ),
    ]
    for groups, y, names, law in cases:
        data = _halves(rng, groups, np.ones(300), noise=0.0, y=y)
        best = _fit(data[0:2], data[2:4], data[4:6])[0]
        assert best.transform in ("sine", "cosine") and best.val_rmse < 1e-6
        values = {p_s: 0.4, n_s: 1.3, t_s: 1.1, one: 1.0}
        _reads(best, names, one, one * law, values)


def test_an_angle_whose_noisy_labels_pass_the_ranges_end_is_still_read_as_one():
    """The aberration acos(...) at 1% noise over theta in [0, pi]: labels near 0 fall below
    it, and cos(y) still gives the law."""
    rng = np.random.default_rng(12)
    theta, pi_1 = rng.uniform(0.0, np.pi, 400), rng.uniform(0.0, 0.9, 400)
    theta[::20] = 0.0  # head-on: y = 0
    y = np.arccos((np.cos(theta) - pi_1) / (1 - pi_1 * np.cos(theta)))
    data = _halves(rng, np.column_stack([theta, pi_1]), np.ones(400), noise=0.01, y=y)
    assert min(data[4].min(), data[5].min()) < 0.0
    best = _fit(data[0:2], data[2:4], data[4:6])[0]
    assert best.transform == "cosine" and best.n_terms == 3


def test_a_label_with_units_is_not_read_as_an_angle():
    """y = N * pi within [0, 1] with N a length: asin and acos of a dimensioned label are not
    laws, whatever its range."""
    rng = np.random.default_rng(10)
    pi, n = rng.uniform(0.1, 1.0, 300), rng.uniform(0.5, 1.0, 300)
    data = _halves(rng, np.sin(pi)[:, None], n, noise=0.0, y=n * np.sin(np.sin(pi)))
    fits = _fit(data[0:2], data[2:4], data[4:6])
    assert fits and all(f.transform not in ("sine", "cosine") for f in fits)


def test_a_root_whose_label_changes_sign_takes_it_from_a_factor():
    """Lorentz's x' = x*(1 - pi_1*pi_2)/sqrt(1 - pi_1**2), pi_1 = u/c and pi_2 = c*t/x: y/N,
    y and N all take both signs, so no root has a sign of its own; (1 - pi_1*pi_2) carries
    it."""
    rng = np.random.default_rng(11)
    pi_1, pi_2 = rng.uniform(-0.9, 0.9, 400), rng.uniform(-3.0, 3.0, 400)
    n = rng.uniform(-2.0, 2.0, 400)
    y = n * (1 - pi_1 * pi_2) / np.sqrt(1 - pi_1**2)
    data = _halves(rng, np.column_stack([pi_1, pi_2]), n, noise=0.0, y=y)
    best = _fit(data[0:2], data[2:4], data[4:6])[0]
    assert best.val_rmse < 1e-6
    p1, p2, n_s = sp.symbols("pi_1 pi_2 N")
    expected = n_s * (1 - p1 * p2) / sp.sqrt(1 - p1**2)
    for values in ((0.5, 2.0, -1.5), (-0.7, 1.0, 0.8), (0.2, -2.5, 1.1)):
        _reads(best, ["pi_1", "pi_2"], n_s, expected, dict(zip((p1, p2, n_s), values, strict=True)))


@settings(max_examples=25, deadline=None)
@given(n_groups=st.integers(0, 6))
def test_the_term_set_starts_with_the_constant_and_stays_within_its_bound(n_groups):
    exponents, trig = group_columns(n_groups, max_columns=300)
    assert exponents.shape == (len(trig), n_groups)
    assert 1 <= len(trig) <= 300
    assert not exponents[0].any() and trig[0] is None
    assert len({(tuple(e), t) for e, t in zip(exponents.tolist(), trig, strict=True)}) == len(trig)
    of_one = [t for t in trig if t is not None and len(t) == 2]
    of_two = [t for t in trig if t is not None and len(t) == 3]
    assert all(t[0] in ("sin", "cos", "sin2", "exp", "tanh", "log") for t in of_one)
    assert all(t[0] in ("sin", "cos", "square") and t[1] < t[2] < n_groups for t in of_two)
    assert all(t[1] < n_groups for t in of_one)


@pytest.mark.parametrize("equation", [32, 99])
def test_a_law_whose_groups_are_swamped_by_noise_is_read_in_the_labels_units(equation):
    """Larmor's a**2*q**2/(c**3*epsilon) (no group) and the Bohr energies
    -m*q**4/(32*pi**2*epsilon**2*hbar**2*n**2) (one group, n) at 1% label noise: a real KAN
    run on the groups is not at the floor; the fit on y, or the choice made again on y, gives
    the law."""
    problem = with_label_noise(feynman_problem(equation, 300, 0), 0.01, 0)
    problem = with_units(problem, feynman_units(equation, problem.target))
    config = DiscoverConfig(hidden=(3,), steps=10, round_steps=3, rounds=1, compare=False)
    runs, _ = method_runs(problem, ("emp",), replace(config, workers=1, progress=False))
    run = runs["emp"]
    if equation == 32:  # no group: C * N(x) is the units' own candidate
        assert run.candidate.startswith("units-")
    assert is_exact_recovery(
        run.formula.expression,
        problem.truth,
        problem.variables,
        test_r2=run.formula.test_r2,
        ranges=problem.ranges,
    )


def _formula(text: str) -> SymbolicFormula:
    expression = sp.sympify(text)
    return SymbolicFormula(
        expression=expression,
        variables=sorted(expression.free_symbols, key=str),
        test_rmse=0.0,
        test_r2=1.0,
        train_rmse=0.0,
        spline_test_rmse=0.0,
        complexity=int(sp.count_ops(expression)) + len(expression.free_symbols),
        edges=[],
        explains_data=True,
        seconds=0.0,
    )


def test_with_groups_the_formula_is_chosen_again_on_the_labels_own_rows():
    """On the groups each row's error is divided by |N|; mapped back, the candidate of the
    chosen one's route with the smaller error on y wins, one from another route or one kept
    out as flat does not."""
    front = [
        {"candidate": "product-2", "route": "none", "val_rmse": 0.048, "edges": 4},
        {"candidate": "inverse-square-direct-1", "route": "none", "val_rmse": 0.0116, "edges": 4},
        {"candidate": "log", "route": "log", "val_rmse": 0.001, "edges": 3},
        {
            "candidate": "none-direct-2",
            "route": "none",
            "val_rmse": 0.0001,
            "edges": 4,
            "flat": ["sin"],
        },
    ]
    formulas = [
        _formula("6*sqrt(d**3/(G*m_2*(m_1/m_2 + 8/9)))"),
        _formula("2*pi*sqrt(d**3/(G*m_2*(m_1/m_2 + 1)))"),
        _formula("sqrt(d**3/(G*m_2))*exp(m_1/m_2)"),
        _formula("sqrt(d**3/(G*m_2))*(1 - m_1/m_2)"),
    ]
    validation = {"y": torch.linspace(0.0, 1.0, 60)[:, None]}
    config = DiscoverConfig()
    assert _chosen_in_label_units(front, formulas, 0, validation, config) == 1
    # the run's own choice stands where no candidate of its route is better
    assert _chosen_in_label_units(front, formulas, 1, validation, config) == 1
