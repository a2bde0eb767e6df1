"""The product search's compiled loops compute what its numpy path computes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan.symbolic.products import forms, grid
from emp_kan.symbolic.products.kernels import (
    _median_of_every_4th,
    log_column_jacobian,
    log_column_residual,
)
from emp_kan.symbolic.registry import library_function, library_names

# every function the registry gives a code in the compiled loop, with that code
FUNCTION_CODES = {
    name: library_function(name).kernel
    for name in (*library_names(), "exp(x)-1", "cosh")
    if library_function(name).kernel is not None
}

_RNG_SEEDS = range(12)


def _landscape(seed: int, n: int = 120):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.2, 1.0, n) * rng.choice([-1.0, 1.0], n)
    fixed = np.column_stack([rng.normal(size=(n, 2)), np.ones(n)])
    projected = grid.Projected(fixed, rng.normal(size=n), rng.uniform(0.1, 1.0, n))
    return rng, z, projected


def test_every_function_the_search_tries_has_a_compiled_form():
    # A built-in function without a code would silently take the slow numpy path.
    assert set(forms.product_functions(library_names())) <= set(FUNCTION_CODES)
    # one code per function, and the codes the loop knows (0 to 13)
    assert sorted(FUNCTION_CODES.values()) == list(range(14))


@pytest.mark.parametrize("function", sorted(FUNCTION_CODES))
def test_the_residual_is_the_numpy_residual(function):
    code = FUNCTION_CODES[function]
    for seed in _RNG_SEEDS:
        rng, z, projected = _landscape(seed)
        z = np.abs(z) if seed % 2 else z  # log is defined on these rows
        for landscape in (projected, projected.smooth):
            a, b = rng.normal(size=2)
            column = grid.grid_columns(function, z, np.array([a]), np.array([b]))[:, 0]
            out = np.empty(len(z))
            clip = math.nan if landscape.clip is None else landscape.clip
            sse = log_column_residual(
                code, z, a, b, clip, landscape.root_weight, landscape.q, landscape.target, out
            )
            if not np.isfinite(column).all():
                assert sse == -1.0
                continue
            expected = landscape.residual(column)
            np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)
            assert sse == pytest.approx(float(expected @ expected), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(
    ("function", "a", "b"),
    [("log", 1.0, 0.0), ("x", 1.0, 0.0), ("arcsin", 3.0, 0.0), ("exp", 1000.0, 0.0)],
)
def test_a_column_undefined_at_one_row_is_refused(function, a, b):
    # log(0), |u| > 1 for arcsin, and overflow: the numpy path marks these columns unusable.
    z = np.array([0.0, 0.5, 1.0, 2.0])
    q = np.full((4, 1), 0.5)
    out = np.empty(4)
    assert (
        log_column_residual(
            FUNCTION_CODES[function], z, a, b, math.nan, np.ones(4), q, np.ones(4), out
        )
        == -1.0
    )


@pytest.mark.parametrize("function", sorted(FUNCTION_CODES))
def test_the_grid_scores_are_the_numpy_scores(function):
    # Including the functions whose (a, b) and (-a, -b) columns are computed once.
    for seed in _RNG_SEEDS[:4]:
        _, z, projected = _landscape(seed)
        a, b = grid.ab_grid(function, z)
        smooth, exact = grid.grid_scores(function, z, a, b, projected, exact=True)
        columns = grid.grid_columns(function, z, a, b)
        usable = np.isfinite(columns).all(axis=0)
        assert np.array_equal(np.isfinite(smooth), usable)
        assert np.array_equal(np.isfinite(exact), usable)
        if usable.any():
            np.testing.assert_allclose(
                smooth[usable], projected.smooth.sse(columns[:, usable]), rtol=1e-10, atol=1e-10
            )
            np.testing.assert_allclose(
                exact[usable], projected.sse(columns[:, usable]), rtol=1e-10, atol=1e-10
            )


@pytest.mark.parametrize(
    "function", sorted(n for n in FUNCTION_CODES if library_function(n).mirrored)
)
def test_mirrored_functions_give_one_column_for_a_point_and_its_mirror(function):
    # The grid shares a column between (a, b) and (-a, -b) only where numpy makes them equal.
    u = np.random.default_rng(0).uniform(-0.99, 0.99, 10000) * (
        1.0 if function in ("arcsin", "arctanh") else 5.0
    )
    f = library_function(function).numpy
    assert np.array_equal(np.abs(f(-u)), np.abs(f(u)))
    assert np.array_equal(grid.B_GRID, -grid.B_GRID[::-1])


@pytest.mark.parametrize("function", sorted(FUNCTION_CODES))
def test_the_jacobian_is_the_residuals_slope(function):
    code = FUNCTION_CODES[function]
    step = 1e-6
    for seed in _RNG_SEEDS[:6]:
        rng, z, projected = _landscape(seed)
        if function == "log":
            z = np.abs(z)
        a, b = rng.uniform(0.3, 0.8), rng.uniform(-0.02, 0.02)  # |a z + b| >= 0.04: smooth
        jacobian = np.empty((len(z), 2))
        assert (
            log_column_jacobian(
                code, z, a, b, projected.root_weight, projected.q, projected.target, jacobian
            )
            == 0.0
        )
        for column, (da, db) in enumerate(((step, 0.0), (0.0, step))):
            ends = []
            for sign in (1.0, -1.0):
                out = np.empty(len(z))
                log_column_residual(
                    code,
                    z,
                    a + sign * da,
                    b + sign * db,
                    math.nan,
                    projected.root_weight,
                    projected.q,
                    projected.target,
                    out,
                )
                ends.append(out)
            central = (ends[0] - ends[1]) / (2 * step)
            np.testing.assert_allclose(
                jacobian[:, column], central, rtol=1e-5, atol=1e-6 * (1 + np.abs(central).max())
            )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60))
def test_the_floor_median_is_numpys(values):
    column = np.array(values)
    assert _median_of_every_4th(column) == np.median(column[::4])
