"""The refits' Levenberg-Marquardt solver finds least-squares minima and never makes a fit worse."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan.symbolic.levenberg import levenberg_marquardt


def _linear(design, target):
    return lambda p: (design @ p - target, design)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6), st.integers(8, 60))
def test_a_linear_problem_reaches_the_least_squares_solution(seed, n_params, n_rows):
    gen = np.random.default_rng(seed)
    design = gen.normal(size=(n_rows, n_params))
    target = gen.normal(size=n_rows)
    best = np.linalg.lstsq(design, target, rcond=None)[0]
    found = levenberg_marquardt(_linear(design, target), gen.normal(size=n_params) * 3, 200)
    cost = float(np.sum((design @ found - target) ** 2))
    assert cost <= float(np.sum((design @ best - target) ** 2)) * (1 + 1e-8) + 1e-12


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30))
def test_the_result_is_never_worse_than_the_start(seed, budget):
    gen = np.random.default_rng(seed)
    x = np.linspace(0, 2, 50)
    y = 1.7 * np.exp(-0.8 * x) + 0.01 * gen.normal(size=50)

    def both(p):
        with np.errstate(over="ignore", invalid="ignore"):  # wild starts overflow; rejected
            e = np.exp(p[1] * x)
            return p[0] * e - y, np.stack([e, p[0] * x * e], axis=1)

    start = gen.normal(size=2) * 2
    found = levenberg_marquardt(both, start, budget)
    assert float(np.sum(both(found)[0] ** 2)) <= float(np.sum(both(start)[0] ** 2))


def test_a_nonlinear_fit_recovers_the_parameters_and_repeats_bitwise():
    x = np.linspace(0.1, 3, 200)
    y = 2.5 * np.sin(1.3 * x + 0.4)

    def both(p):
        u = p[1] * x + p[2]
        return p[0] * np.sin(u) - y, np.stack(
            [np.sin(u), p[0] * x * np.cos(u), p[0] * np.cos(u)], axis=1
        )

    runs = [levenberg_marquardt(both, np.array([2.0, 1.2, 0.3]), 100) for _ in range(3)]
    assert np.allclose(runs[0], [2.5, 1.3, 0.4], atol=1e-7)
    assert all(np.array_equal(runs[0], r) for r in runs[1:])


def test_a_problem_that_cannot_move_returns_the_start():
    # A zero Jacobian (a formula flat in its parameters) has nothing to step along.
    start = np.array([1.0, -2.0])
    found = levenberg_marquardt(lambda p: (np.ones(5), np.zeros((5, 2))), start, 50)
    assert np.array_equal(found, start)


def test_a_badly_scaled_fit_is_not_stopped_by_its_first_damped_steps():
    # A scale of 1e5 beside a frequency of 1: the first steps are heavily damped, short and
    # gain little; stopping on them (as the first version did, on two refits in three of a
    # default discovery) would return the start.
    x = np.linspace(-2, 2, 300)
    y = 8e4 * np.sin(1.3 * x) + 5 * x

    def both(p):
        s, c = np.sin(p[1] * x), np.cos(p[1] * x)
        return p[0] * s + p[2] * x - y, np.stack([s, p[0] * x * c, x], axis=1)

    found = levenberg_marquardt(both, np.array([6e4, 1.0, 0.0]), 200)
    assert np.allclose(found, [8e4, 1.3, 5.0], rtol=1e-6, atol=1e-6)
