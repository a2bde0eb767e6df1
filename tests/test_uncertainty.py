"""Constants with error bars: standard errors that cover the true constants, snapping inside
them, exponents snapped to simple fractions only, and a choice that ties errors within the
validation rows' own spread."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan.data.split import Split
from emp_kan.symbolic.choice import choose_formula, noise_tie
from emp_kan.symbolic.expression import snap_candidates
from emp_kan.symbolic.uncertainty import constants_with_errors, snap_within_errors

X, Y = sp.symbols("x y")


def _rows(x: np.ndarray, y: np.ndarray) -> Split:
    tx, ty = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)[:, None]
    return Split.of(
        {"train_input": tx, "train_label": ty, "test_input": tx[:5], "test_label": ty[:5]}
    )


def _law(seed: int, noise: float, n: int = 300) -> Split:
    """y = 2.5 * x**1.5 + 0.7 * y on x, y in [0.5, 2], Gaussian noise of ``noise`` x the
    labels' spread."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, (n, 2))
    clean = 2.5 * x[:, 0] ** 1.5 + 0.7 * x[:, 1]
    return _rows(x, clean + noise * clean.std() * rng.standard_normal(n))


def test_two_standard_errors_cover_the_true_constants_in_most_of_50_draws():
    covered, total = 0, 0
    for seed in range(50):
        rows = _law(seed, 0.01)
        start = sp.Float(2.4) * X ** sp.Float(1.6) + sp.Float(0.6) * Y
        found = constants_with_errors(start, [X, Y], rows)
        truth = sorted([2.5, 1.5, 0.7], reverse=True)
        for constant, true in zip(found, truth, strict=True):
            assert constant["std_error"] is not None and constant["std_error"] > 0
            total += 1
            fitted = snap_free_refit(start, rows)[truth.index(true)]
            covered += abs(fitted - true) <= 2 * constant["std_error"]
    assert covered >= 0.9 * total, (covered, total)


def snap_free_refit(expr: sp.Expr, rows: Split) -> list[float]:
    """The least-squares constants themselves, largest first (what the errors are errors of)."""
    from emp_kan.symbolic.expression import numpy_xy
    from emp_kan.symbolic.refit import FloatProblem

    x, y = numpy_xy(rows.fit["train_input"], rows.fit["train_label"])
    problem = FloatProblem(expr, [X, Y], x, y)
    return [float(v) for v in problem.solve(problem.start)]


def test_standard_errors_grow_with_the_noise():
    expr = sp.Float(2.5) * X ** sp.Float(1.5) + sp.Float(0.7) * Y
    quiet = constants_with_errors(expr, [X, Y], _law(0, 0.01))
    loud = constants_with_errors(expr, [X, Y], _law(0, 0.04))
    for a, b in zip(quiet, loud, strict=True):
        assert 2.5 < b["std_error"] / a["std_error"] < 6.5


def test_a_noisy_exponent_snaps_inside_its_error_bar_and_the_rest_is_refitted():
    rows = _law(3, 0.01)
    noisy = sp.Float(2.4913) * X ** sp.Float(1.5037) + sp.Float(0.7021) * Y
    snapped = snap_within_errors(noisy, [X, Y], rows)
    assert snapped == sp.Rational(5, 2) * X ** sp.Rational(3, 2) + sp.Rational(7, 10) * Y
    # a constant the data pin down far from any simple number stays a float
    rng = np.random.default_rng(4)
    x = rng.uniform(0.5, 2.0, (300, 2))
    clean = 2.5 * x[:, 0] ** 1.5 + 0.7342 * x[:, 1]
    rows = _rows(x, clean + 0.001 * clean.std() * rng.standard_normal(300))
    kept = snap_within_errors(
        sp.Float(2.5004) * X ** sp.Float(1.4998) + sp.Float(0.7341) * Y, [X, Y], rows
    )
    assert [float(f) for f in kept.atoms(sp.Float)] == [pytest.approx(0.7342, abs=1e-3)], kept
    # without noise the error bars are too narrow for a wrong exponent
    wrong = sp.Float(2.5) * X ** sp.Float(1.45) + sp.Float(0.7) * Y
    assert snap_within_errors(wrong, [X, Y], _law(3, 0.0)) == wrong


@settings(max_examples=60, deadline=None)
@given(st.floats(-6, 6, allow_nan=False))
def test_exponents_snap_only_to_integers_halves_and_thirds(value):
    for number in snap_candidates(value, exponent=True):
        assert number.is_Rational and number.q in (1, 2, 3)
        assert abs(float(number) - value) <= 0.5


def test_errors_within_the_validation_rows_spread_tie_and_the_simplest_wins():
    # the law (complexity 5) and a formula that fits 3% of the noise (complexity 30), on 60 rows
    complexities, rmses = [5, 30], [0.0100, 0.0097]
    assert noise_tie(rmses, 60) > 0.0100
    assert choose_formula(complexities, rmses, 1.0, n_rows=60) == 0
    assert choose_formula(complexities, rmses, 1.0) == 1  # without the band: the closer fit
    # a clear gain is still a gain
    assert choose_formula([5, 30], [0.0200, 0.0100], 1.0, n_rows=60) == 1
    # without noise the exact law is near 0 and so is the band
    assert choose_formula([5, 9], [1e-3, 1e-9], 1.0, n_rows=60) == 1


def test_a_formula_sympy_cannot_evaluate_keeps_its_constants_and_costs_nothing_else():
    # a mapped formula can carry zoo (1/0 folded by sympy); the refit must not crash the run
    rows = _law(0, 0.01)
    broken = sp.Float(2.5) * X ** sp.Float(1.5) + sp.zoo * Y
    assert snap_within_errors(broken, [X, Y], rows) is broken
    assert [c["std_error"] for c in constants_with_errors(broken, [X, Y], rows)] == [None, None]
