"""Specification of the EMP core: N_eff, nu, the top-nu mask, s_eff and the mass bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from emp_kan import (
    effective_number,
    emp_mask,
    emp_select,
    mass_lower_bound,
    preserved_mass,
    retention_count,
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
score_vectors = arrays(np.float64, st.integers(1, 60), elements=finite)
nonneg_vectors = arrays(np.float64, st.integers(1, 60), elements=st.floats(0, 1e3, allow_nan=False))


# --- N_eff -------------------------------------------------------------------------------


@given(score_vectors)
def test_effective_number_lies_between_one_and_n(s):
    n_eff = effective_number(s)
    assert 1.0 <= n_eff <= s.size


@pytest.mark.parametrize("n", [1, 2, 7, 64, 1000])
def test_uniform_scores_have_n_eff_n_and_keep_everything(n):
    s = np.full(n, 0.3)
    assert effective_number(s) == pytest.approx(n, rel=1e-12)
    assert retention_count(s) == n
    assert emp_mask(s).all()


@pytest.mark.parametrize("n", [1, 2, 9])
def test_one_hot_scores_have_n_eff_one(n):
    s = np.zeros(n)
    s[n // 2] = 5.0
    assert effective_number(s) == 1.0
    assert emp_mask(s).tolist() == [i == n // 2 for i in range(n)]


@given(score_vectors, st.floats(1e-3, 1e3), st.randoms(use_true_random=False))
def test_n_eff_is_invariant_to_scaling_and_permutation(s, scale, rnd):
    assume(np.abs(s).sum() > 1e-9)
    perm = list(range(s.size))
    rnd.shuffle(perm)
    ref = effective_number(s)
    assert effective_number(s * scale) == pytest.approx(ref, rel=1e-9)
    assert effective_number(s[perm]) == pytest.approx(ref, rel=1e-9)


def test_all_zero_scores_keep_everything():
    s = np.zeros((3, 4))
    assert effective_number(s) == 12.0
    assert emp_mask(s).all()
    sel = emp_select(s)
    assert sel.kept == 12 and sel.preserved_mass == 1.0


# --- the mask ----------------------------------------------------------------------------


@given(score_vectors, st.floats(0.05, 3.0))
def test_mask_keeps_exactly_nu_largest(s, beta):
    sel = emp_select(s, beta)
    nu = retention_count(s, beta)
    assert sel.kept == nu == int(sel.mask.sum())
    assert nu == min(s.size, max(1, math.floor(beta * effective_number(s) + 1e-9 * beta * s.size)))
    kept, dropped = np.abs(s[sel.mask]), np.abs(s[~sel.mask])
    if dropped.size:
        assert kept.min() >= dropped.max()


@given(st.integers(2, 40), st.integers(0, 39), st.floats(0.1, 2.0))
def test_ties_go_to_the_earlier_position(n, n_big, beta):
    n_big = min(n_big, n - 1)
    s = np.ones(n)
    s[n - n_big :] = 2.0  # the large ties sit at the end
    mask = emp_mask(s, beta)
    nu = int(mask.sum())
    big_kept = min(nu, n_big)
    expected = np.zeros(n, dtype=bool)
    expected[n - n_big : n - n_big + big_kept] = True
    expected[: nu - big_kept] = True
    assert mask.tolist() == expected.tolist()


@given(arrays(np.float64, st.integers(2, 50), elements=finite), st.data())
def test_alive_mask_restricts_ranking_and_dead_entries_stay_dead(s, data):
    alive = data.draw(arrays(bool, s.size))
    assume(alive.any())
    sel = emp_select(s, alive=alive)
    assert not sel.mask[~alive].any()
    assert sel.mask.sum() == sel.kept == retention_count(s[alive])
    assert sel.n_alive == alive.sum()
    assert sel.n_eff == pytest.approx(effective_number(s[alive]), rel=1e-12)


def test_masks_compose_over_rounds():
    rng = np.random.default_rng(0)
    s = rng.exponential(size=200)
    alive = np.ones_like(s, dtype=bool)
    seen_alive = []
    for _ in range(6):
        alive = emp_mask(rng.permutation(s) + s, alive=alive)
        seen_alive.append(alive.copy())
    for before, after in zip(seen_alive, seen_alive[1:], strict=False):
        assert not (after & ~before).any()


def test_shape_is_preserved_for_matrices():
    s = np.array([[0.1, 3.0, 0.2], [2.5, 0.05, 0.01]])
    mask = emp_mask(s)
    assert mask.shape == (2, 3) and mask.dtype == bool
    assert mask.tolist() == [[False, True, False], [True, False, False]]


def test_signed_shift_ranks_by_distance_from_minimum():
    s = np.array([-5.0, 0.0, 4.0])
    assert emp_mask(s).tolist() == [True, False, False]  # |s| ranks -5 first
    assert emp_mask(s, signed="shift").tolist() == [False, False, True]


def test_sequences_and_integer_scores_are_accepted():
    assert emp_mask([1, 0, 9]).tolist() == [False, False, True]
    assert effective_number([[1, 1], [1, 1]]) == 4.0


# --- torch --------------------------------------------------------------------------------


@given(arrays(np.float32, st.integers(1, 80), elements=st.floats(-100, 100, width=32)))
@settings(max_examples=50)
def test_torch_and_numpy_agree(s):
    t = torch.from_numpy(s.copy())
    mask_t = emp_mask(t)
    assert isinstance(mask_t, torch.Tensor) and mask_t.dtype == torch.bool
    assert mask_t.numpy().tolist() == emp_mask(s).tolist()
    assert effective_number(t) == pytest.approx(effective_number(s), rel=1e-6)


def test_torch_alive_mask_as_float_like_pykan():
    scores = torch.tensor([[0.5, 0.1], [0.4, 0.0]])
    alive = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    mask = emp_mask(scores, alive=alive)
    assert mask.shape == (2, 2)
    assert not mask[1, 0]


# --- s_eff and the bound ------------------------------------------------------------------


@given(nonneg_vectors)
def test_preserved_mass_agrees_with_selection(s):
    sel = emp_select(s)
    assert preserved_mass(s, sel.mask) == pytest.approx(sel.preserved_mass, rel=1e-12, abs=1e-15)
    assert 0.0 <= sel.preserved_mass <= 1.0 + 1e-12


@given(arrays(np.float64, st.integers(1, 80), elements=st.floats(0, 1e3)))
@settings(max_examples=400)
def test_mass_bound_holds_for_every_nu(s):
    sel = emp_select(s)
    assert sel.preserved_mass >= sel.mass_bound - 1e-12


@pytest.mark.parametrize("tiny", [1.81165025e-158, 1e-160, 5e-170, 1e-300])
def test_tiny_equal_scores_count_as_equal(tiny):
    # Their squares are subnormal and keep only a few digits: found by hypothesis in
    # test_mass_bound_holds_for_every_nu (N_eff 1.99999999 for two scores of 1.8e-158, so one
    # of two equal scores was dropped, below the mass bound).
    for n in (2, 3, 7):
        sel = emp_select(np.full(n, tiny))
        assert sel.n_eff == n and sel.kept == n and sel.preserved_mass == 1.0


@given(st.integers(2, 30), st.floats(0.0, 0.999))
def test_bound_holds_near_its_worst_cases(n, t):
    # Two spikes (the nu = 1 extremal family) and one spike plus a uniform floor (nu >= 2).
    two = np.zeros(n)
    two[0], two[1] = 0.5 + 0.5 * t, 0.5 - 0.5 * t
    spike = np.full(n, 1.0)
    spike[0] = 1.0 + 10 * t * n
    for s in (two, spike):
        sel = emp_select(s)
        assert sel.preserved_mass >= sel.mass_bound - 1e-12


@pytest.mark.parametrize(
    ("nu", "n", "expected"),
    [(52, 64, 0.823262), (10, 16, 0.690279), (3, 10, 0.585774), (2, 5, 0.644949)],
)
def test_bound_matches_published_values(nu, n, expected):
    assert round(mass_lower_bound(nu, n), 6) == expected
    assert round(mass_lower_bound(nu + 0.5, n), 6) == expected


def test_theorem_4_2_counterexample_is_handled_by_the_two_spike_bound():
    w = np.array([0.51, 0.49] + [0.0] * 8)
    sel = emp_select(w)
    assert sel.kept == 1
    assert sel.n_eff == pytest.approx(1.0 / (0.51**2 + 0.49**2))
    assert sel.preserved_mass == pytest.approx(0.51)
    # The published formula would promise 0.70 here, which is false.
    published = 1 / 10 + (9 / 10) * math.sqrt(8 / (2 * 9))
    assert published == pytest.approx(0.70, abs=0.01)
    assert sel.preserved_mass < published
    assert sel.mass_bound == pytest.approx(0.51, abs=1e-9)
    assert sel.preserved_mass >= sel.mass_bound - 1e-12


def test_bound_is_one_when_everything_is_kept():
    assert mass_lower_bound(5.0, 5) == 1.0
    assert mass_lower_bound(1.0, 1) == 1.0


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: emp_mask([]), "empty"),
        (lambda: emp_mask(np.zeros((0, 3))), "empty"),
        (lambda: emp_mask([1.0, float("nan"), float("nan"), float("inf")]), "2 NaN and 1 infinite"),
        (lambda: effective_number(torch.tensor([1.0, float("-inf")])), "0 NaN and 1 infinite"),
        (lambda: emp_mask([1.0, 2.0], beta=0), "beta must be a positive finite number"),
        (lambda: emp_mask([1.0, 2.0], beta=-1.0), "beta must be a positive finite number"),
        (lambda: emp_mask([1.0, 2.0], beta=float("inf")), "beta must be a positive finite"),
        (lambda: emp_mask([1.0, 2.0], beta=float("nan")), "beta must be a positive finite"),
        (lambda: emp_mask([1.0, 2.0], beta="1"), "beta must be a positive finite number"),
        (lambda: emp_mask([1.0, 2.0], alive=[True]), "alive has shape (1,)"),
        (lambda: emp_mask([1.0, 2.0], alive=[False, False]), "no entry as alive"),
        (lambda: emp_mask([1.0, 2.0], alive=[0.5, 1.0]), "boolean"),
        (lambda: emp_mask([1.0, 2.0], signed="square"), "signed must be"),
        (lambda: emp_mask(["a", "b"]), "numbers"),
        (lambda: emp_mask([[1.0], [1.0, 2.0]]), "rectangular"),
        (lambda: preserved_mass([1.0, 2.0], [True]), "shape"),
        (lambda: mass_lower_bound(0.5, 4), "n_eff must lie in [1, n]"),
        (lambda: mass_lower_bound(5.0, 4), "n_eff must lie in [1, n]"),
        (lambda: mass_lower_bound(1.0, 0), "n must be a positive whole number"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=None) as info:
        call()
    assert message in str(info.value)


def test_nan_in_a_dead_entry_is_ignored():
    mask = emp_mask([1.0, float("nan"), 0.2], alive=[True, False, True])
    assert mask.tolist() == [True, False, False]
