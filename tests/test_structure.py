"""The pruned KAN read as a sum of pieces, and each piece solved as a sparse sum."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan import formula_problem
from emp_kan.discovery.candidates import Candidate, is_kan_family
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.discover import discover
from emp_kan.discovery.run import APPROXIMATE, approximate_label
from emp_kan.kan import adapter
from emp_kan.kan.structure import additive_pieces, piece_values, split_separable
from emp_kan.kan.training import train
from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.recovery import is_exact_recovery
from emp_kan.symbolic.sparse_sum import fit_sparse_sum, information_criterion

X = sp.Symbol("x")


@st.composite
def kan_masks(draw):
    widths = draw(st.lists(st.integers(1, 4), min_size=2, max_size=3)) + [1]
    return [
        np.array(
            draw(
                st.lists(
                    st.lists(st.booleans(), min_size=w_in, max_size=w_in),
                    min_size=w_out,
                    max_size=w_out,
                )
            ),
            dtype=bool,
        )
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
    ]


@settings(max_examples=200, deadline=None)
@given(kan_masks())
def test_pieces_have_disjoint_inputs_that_cover_every_input_reaching_the_output(masks):
    pieces = additive_pieces(masks)
    inputs = [i for p in pieces for i in p.inputs]
    assert len(inputs) == len(set(inputs))
    reach = np.eye(masks[0].shape[1], dtype=bool)
    for mask in masks:
        reach = (mask.astype(int) @ reach.astype(int)) > 0
    assert set(inputs) == set(np.flatnonzero(reach[0]).tolist())
    nodes = [n for p in pieces for n in p.nodes]
    assert len(nodes) == len(set(nodes))  # a node feeds one piece


@settings(max_examples=50, deadline=None)
@given(st.floats(0.01, 1e3), st.floats(1e-12, 1e3), st.integers(1, 10), st.integers(10, 500))
def test_the_criterion_charges_each_parameter_and_rewards_accuracy(rmse, floor, k, n):
    base = information_criterion(rmse, n, k, floor)
    assert information_criterion(rmse, n, k + 1, floor) > base
    assert information_criterion(rmse / 2, n, k, floor) <= base
    assert information_criterion(math.nan, n, k, floor) == math.inf


@pytest.mark.parametrize(
    "law, low, high",
    [
        ("x**4/2 - 2*x**2 + x", -2, 2),  # a polynomial
        ("sin(x) + x**2", -2, 2),  # a function beside a polynomial
        ("log(x) + exp(-x)", 0.5, 3),  # two functions
    ],
)
def test_a_one_input_sum_is_found_from_its_samples(law, low, high):
    truth = sp.sympify(law, locals={"x": X})
    f = sp.lambdify(X, truth, "numpy")
    rng = np.random.default_rng(0)
    x, xv = rng.uniform(low, high, 400), rng.uniform(low, high, 100)
    best = fit_sparse_sum((x, f(x)), (xv, f(xv)), DEFAULT_LIBRARY)[0]
    assert best.val_rmse < 1e-6 * float(np.std(f(xv)))
    found = best.sympy(X)
    assert is_exact_recovery(found, truth, [X], test_r2=1.0, ranges={"x": (low, high)})


def _tiny_kan(law: str, ranges: str, hidden: int = 3):
    """A [n, hidden, 1] KAN trained on ``law``."""
    problem = formula_problem(law, ranges, samples=300, seed=0)
    model = adapter.make_kan([len(problem.variables), hidden, 1], seed=0)
    return problem, train(model, problem.dataset, steps=30)


def test_the_pieces_and_the_constant_add_up_to_the_network():
    problem, model = _tiny_kan("sin(x) + y**2", "x=-2:2,y=-2:2")
    x = problem.dataset["train_input"]
    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    masks[0][:, 1] = False  # input y feeds no node: x alone reaches the output
    adapter.set_edge_masks(model, masks)
    pieces = additive_pieces(masks)
    assert [p.inputs for p in pieces] == [(0,)]
    values, constant = piece_values(model, x, pieces)
    whole = adapter.forward_float64(model, x)[:, 0].numpy()
    np.testing.assert_allclose(values.sum(axis=1) + constant, whole, rtol=1e-9, atol=1e-9)


def test_an_input_entering_a_shared_node_additively_is_split_off():
    # One hidden node: both inputs share it. Trained on a sum, its output edge is straight,
    # its function of (x, y) additive, and each input becomes a piece of its own.
    problem, model = _tiny_kan("sin(x) + y**2", "x=-2:2,y=-2:2", hidden=1)
    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    (whole,) = additive_pieces(masks)
    assert whole.inputs == (0, 1)
    split, _ = split_separable(model, problem.dataset["train_input"], [whole])
    assert [p.inputs for p in split] == [(0,), (1,)]
    assert all(p.held for p in split)
    # A product is not additive: nothing splits.
    problem, model = _tiny_kan("x*y", "x=0.5:2,y=0.5:2", hidden=1)
    split, _ = split_separable(model, problem.dataset["train_input"], [whole])
    assert [p.inputs for p in split] == [(0, 1)]


_TINY = DiscoverConfig(hidden=(3,), steps=40, rounds=2, compare=False, candidates="kan")


@pytest.mark.parametrize(
    "law, ranges, family",
    [
        ("x**4/2 - 2*x**2 + x", "x=-2:2", "polynomial"),
        ("sin(x) + x**2", "x=-2:2", "function sum"),
        ("x**2*y + 3*x - y**2", "x=-1:2,y=-1:2", "interaction"),
    ],
)
def test_each_kind_of_piece_is_read_exactly_from_a_tiny_kan(law, ranges, family):
    problem = formula_problem(law, ranges, samples=400, seed=0)
    report, _ = discover(problem, replace(_TINY, workers=1))
    assert report["exact"], report["formula"]
    assert is_kan_family(report["family"])
    assert all(is_kan_family(c["family"]) for c in report["candidates"])
    structure = report["structure"]
    assert structure is not None
    assert family in {p["family"] for p in structure["pieces"]}


def test_the_kan_only_switch_leaves_out_the_searches_on_the_data():
    problem = formula_problem("x*y", "x=0.5:2,y=0.5:2", samples=300, seed=0)
    config = DiscoverConfig(
        hidden=(3,), steps=20, rounds=1, compare=False, workers=1, all_routes=True
    )
    everything, _ = discover(problem, config)
    kan_only, _ = discover(problem, replace(config, candidates="kan"))
    families = {c["family"] for c in everything["candidates"]}
    assert not all(is_kan_family(f) for f in families)  # here the power law over every input
    assert all(is_kan_family(c["family"]) for c in kan_only["candidates"])


def _candidate(name, val_rmse, network, formula="x", log_transform=None):
    return Candidate(
        name,
        SimpleNamespace(log_transform=log_transform, name="none"),
        SimpleNamespace(final_val_rmse=network),
        SimpleNamespace(expression=sp.sympify(formula)),
        val_rmse,
        {},
    )


def test_a_formula_far_worse_than_its_network_is_labelled_approximate():
    chosen = _candidate("none", 0.5, 0.01, "x - 1")
    accurate = _candidate("none-structure", 0.011, 0.01, "x**2 - x")
    label = approximate_label([chosen, accurate], 0)
    assert label.startswith(APPROXIMATE)
    assert "50x" in label and "none-structure" in label and "x**2 - x" in label
    assert approximate_label([chosen, accurate], 1) is None  # within 10x of the network
    assert approximate_label([_candidate("none", 0.09, 0.01)], 0) is None


def test_a_tiny_kan_run_is_unchanged_by_the_structure_reading_when_a_law_is_already_exact():
    # The default law is read exactly by the KAN's edges; the structure is reported, not solved.
    problem = formula_problem("x*y", "x=0.5:2,y=0.5:2", samples=300, seed=0)
    config = DiscoverConfig(hidden=(3,), steps=20, rounds=1, compare=False, workers=1)
    report, _ = discover(problem, config)
    assert report["exact"]
    assert report["structure"] is not None
    assert all(p["formula"] is None for p in report["structure"]["pieces"])
    assert torch.isfinite(torch.tensor(report["test_rmse"]))
