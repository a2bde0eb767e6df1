"""Symbolic stage: per-edge fits, the verified formula, exact recovery (real pykan, real sympy)."""

from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest
import sympy as sp
import torch

from emp_kan.kan import adapter
from emp_kan.kan.least_squares import solve_last_layer_splines
from emp_kan.kan.training import train
from emp_kan.symbolic.edge_fit import EdgeCandidate, fit_edge, numpy_function
from emp_kan.symbolic.expression import evaluate_formula, snap_constants
from emp_kan.symbolic.formula_terms import Term, refit_terms
from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.recovery import is_exact_recovery, round_formula
from emp_kan.symbolic.search import fit_formula

X = np.linspace(-1, 1, 300)


@pytest.mark.parametrize(
    ("name", "y"),
    [
        ("sin", 0.7 * np.sin(2.1 * X + 0.3) + 0.2),
        ("x^2", 3 * (X - 0.2) ** 2 + 1),
        ("exp", np.exp(-1.5 * X)),
        ("1/x", 1 / (X + 2)),
        ("sqrt", np.sqrt(X + 1.5)),
        ("log", np.log(X + 1.2)),
        ("x", 2 * X - 1),
    ],
)
def test_fit_edge_finds_the_generating_function(name, y):
    best = fit_edge(X, y)[0]
    assert best.function == name
    assert best.r2 > 0.9999
    np.testing.assert_allclose(best.predict(X), y, atol=1e-4 * (np.abs(y).max() + 1))


def test_a_constant_edge_is_a_recorded_constant():
    cands = fit_edge(X, np.full_like(X, 0.25))
    assert [c.function for c in cands] == ["0"]
    assert cands[0].d == pytest.approx(0.25)


def test_functions_undefined_on_the_data_are_left_out():
    names = {c.function for c in fit_edge(X, X**2, ["x^2", "log", "sqrt"])}
    assert "x^2" in names  # log/sqrt may appear only with a shift that keeps them defined
    for c in fit_edge(X, X**2, ["x^2", "log", "sqrt"]):
        assert np.isfinite(c.predict(X)).all()


def test_an_edge_is_fitted_where_its_samples_are_finite():
    # A layer fixed before this edge can leave NaN on some rows; the rest still say sin.
    y = np.sin(2 * X)
    y[::7] = np.nan
    best = fit_edge(X, y)[0]
    assert best.function == "sin" and best.r2 > 0.9999
    nowhere = fit_edge(np.full_like(X, np.nan), y)
    assert [(c.function, c.c, c.d) for c in nowhere] == [("0", 0.0, 0.0)]


def test_unknown_library_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown library function.*'sinus'.*valid names: .*sin"):
        fit_edge(X, X, ["x", "sinus"])


def _one_input_dataset(fn, n=120, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x_tr = torch.rand(n, 1, generator=gen) * 2 - 1
    x_te = torch.rand(n, 1, generator=gen) * 2 - 1
    return {
        "train_input": x_tr,
        "train_label": fn(x_tr),
        "test_input": x_te,
        "test_label": fn(x_te),
    }


@pytest.fixture(scope="module")
def quadratic():
    data = _one_input_dataset(lambda x: 2 * x**2 + 1)
    model = train(adapter.make_kan([1, 1], grid=5, k=3, seed=0), data, steps=8, lamb=0.0)
    return model, data


def test_fit_formula_recovers_a_quadratic_exactly(quadratic, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, data = quadratic
    # The caller's global generators are what is under test, legacy numpy one included.
    random.random(), np.random.random(), torch.rand(1)  # noqa: NPY002
    py_state, np_state, torch_state = (
        random.getstate(),
        np.random.get_state(),  # noqa: NPY002
        torch.random.get_rng_state(),
    )
    found = fit_formula(model, data, variables=["u"])
    assert random.getstate() == py_state
    np_after = np.random.get_state()  # noqa: NPY002
    assert np_after[0] == np_state[0] and np.array_equal(np_after[1], np_state[1])
    assert np_after[2:] == np_state[2:]
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert os.listdir(tmp_path) == []
    u = sp.Symbol("u", real=True)
    assert found.variables == [u]
    assert found.test_r2 > 0.9999 and found.explains_data
    assert sp.simplify(found.expression - (2 * u**2 + 1)) == 0
    assert is_exact_recovery(
        found.expression, 2 * sp.Symbol("u") ** 2 + 1, ["u"], test_r2=found.test_r2
    )
    assert found.edges[0].function == "x^2"
    predict = found.lambdify()
    np.testing.assert_allclose(predict(np.array([[0.5], [-1.0]])), [1.5, 3.0], atol=1e-9)
    assert "u^{2}" in found.latex()
    assert found.to_dict()["formula"] == str(found.expression)


def test_a_formula_worse_than_the_mean_is_flagged():
    gen = torch.Generator().manual_seed(1)
    data = {
        "train_input": torch.rand(80, 1, generator=gen),
        "train_label": torch.randn(80, 1, generator=gen),
        "test_input": torch.rand(80, 1, generator=gen),
        "test_label": torch.randn(80, 1, generator=gen) + 3.0,
    }
    model = train(adapter.make_kan([1, 1], grid=5, k=3, seed=0), data, steps=3, lamb=0.0)
    found = fit_formula(model, data)
    assert not found.explains_data
    assert any("less than predicting the mean" in w for w in found.warnings)


def test_no_live_edge_is_refused(quadratic):
    model, data = quadratic
    dead = adapter.clone_model(model)
    adapter.set_edge_masks(dead, [np.zeros((1, 1), dtype=bool)])
    with pytest.raises(ValueError, match="no live edge"):
        fit_formula(dead, data)


def test_bad_library_and_variables_are_refused_before_work(quadratic):
    model, data = quadratic
    with pytest.raises(ValueError, match="valid names"):
        fit_formula(model, data, library=["x", "bessel"])
    with pytest.raises(ValueError, match="variables must be 1 distinct names"):
        fit_formula(model, data, variables=["a", "b"])


def test_default_library_is_the_documented_one():
    assert set(DEFAULT_LIBRARY) >= {
        "x",
        "x^2",
        "x^3",
        "x^4",
        "1/x",
        "1/x^2",
        "sqrt",
        "exp",
        "log",
        "sin",
        "cos",
        "tanh",
        "abs",
        "0",
    }


# --- exact recovery ---------------------------------------------------------------------


def test_srbench_rule_accepts_constant_offsets_and_factors():
    x, y = sp.symbols("x y")
    assert is_exact_recovery(0.5000001 * x * y**2 + 3.0, x * y**2 / 2, [x, y], test_r2=0.99)
    assert is_exact_recovery(2.0 * x / y, x / y, ["x", "y"], test_r2=0.99)
    assert is_exact_recovery(sp.sin(x) + 0.00001 * y, sp.sin(x), [x, y], test_r2=0.9)


def test_srbench_rule_rejects_wrong_zero_and_poor_formulas():
    x = sp.Symbol("x")
    assert not is_exact_recovery(sp.cos(x), sp.sin(x), [x], test_r2=0.9)
    assert not is_exact_recovery(sp.Integer(0), x, [x], test_r2=0.9)
    assert not is_exact_recovery(x, x, [x], test_r2=0.4)
    assert not is_exact_recovery(x + 0.01 * x**2, x, [x], test_r2=0.99)


def test_a_float_multiple_of_the_truth_is_exact():
    u, w = sp.symbols("u w", real=True)
    found = sp.Float(4335.89215860254) * (sp.Float(0.0151866) * u + sp.Float(0.0303732) * w) ** 2
    assert is_exact_recovery(found, (u + 2 * w) ** 2, [u, w], test_r2=1.0)
    assert is_exact_recovery(sp.Float(0.5) * u * w**2 + sp.Float(0.25), u * w**2 / 2, [u, w])


def test_hyperbolic_functions_are_compared_through_exp():
    # the Hill equation as the symbolic stage once wrote it: tanh(log(S)) = (S**2-1)/(S**2+1)
    s = sp.Symbol("S")
    hill = s**2 / (s**2 + 1)
    assert is_exact_recovery((sp.tanh(sp.log(s)) + 1) / 2, hill, [s], ranges=[(0, 4)])
    assert not is_exact_recovery(sp.tanh(s), hill, [s], ranges=[(0, 4)])
    assert not is_exact_recovery((sp.tanh(sp.log(s)) + 1) / 2 + s / 10, hill, [s], ranges=[(0, 4)])


def test_identities_that_hold_on_positive_ranges_count():
    g, p, rho = sp.symbols("gamma p rho")
    found, truth = sp.sqrt(g) * sp.sqrt(p) / sp.sqrt(rho), sp.sqrt(g * p / rho)
    assert is_exact_recovery(found, truth, ["gamma", "p", "rho"], ranges=[(1, 2)] * 3)
    assert not is_exact_recovery(
        found, truth, ["gamma", "p", "rho"], ranges=[(-2, -1), (-2, -1), (1, 2)]
    )


def test_identities_that_hold_on_ranges_from_zero_count():
    # Kepler's third law (Feynman eq. 110, d in [0, 1]) as the symbolic stage writes it
    d, g, m1, m2 = sp.symbols("d G m_1 m_2")
    found = 2 * sp.pi * sp.sqrt(d**3 / (g * m1 * (1 + m2 / m1)))
    truth = 2 * sp.pi * d ** sp.Rational(3, 2) / sp.sqrt(g * (m1 + m2))
    names = ["d", "G", "m_1", "m_2"]
    assert is_exact_recovery(found, truth, names, ranges=[(0, 1)] + [(0.5, 2)] * 3)
    assert not is_exact_recovery(found, truth, names, ranges=[(-1, 1)] + [(0.5, 2)] * 3)


def test_rounding_follows_srbench():
    x = sp.Symbol("x")
    assert round_formula(1.23456 * x + 0.00005) == sp.Float(1.235) * x


def test_an_overflowed_parameter_does_not_break_the_refit():
    x = np.linspace(-1, 1, 50).reshape(-1, 1)
    y = 2 * x[:, 0] + 1
    terms = [Term(0, 0, 0, "exp", 1.0, 0.0, float("inf"), 1.0, 0.0)]
    consts = [np.array([1.0])]
    out_terms, out_consts = refit_terms(terms, consts, x, y)
    assert out_terms == terms and out_consts[0].tolist() == [1.0]


def test_no_candidate_imitates_a_polynomial_through_cancellation():
    # cos(a x + b) with a tiny a near the top of cos fits x^2 to many digits, but only through a
    # huge c and a cancelling d; such fits must not be offered.
    x = np.linspace(1.0, 2.0, 200)
    for cand in fit_edge(x, 3.0 * x**2 - 1.0):
        if cand.function == "0":
            continue
        u = numpy_function(cand.function)(cand.a * x + cand.b)
        assert u.std() > 1e-3 * np.abs(u).max(), cand


def test_a_two_layer_kan_gives_its_law_in_simplest_form(tmp_path, monkeypatch):
    # Layer 0 is fixed first; the last layer's splines are then solved for exactly before they
    # are fitted, and the scale pykan spreads over both layers is pulled out of the square.
    monkeypatch.chdir(tmp_path)
    gen = torch.Generator().manual_seed(0)
    x_tr = torch.rand(200, 2, generator=gen) * 2 - 1
    x_te = torch.rand(200, 2, generator=gen) * 2 - 1
    law = lambda x: (x[:, :1] + 2 * x[:, 1:]) ** 2  # noqa: E731
    data = {
        "train_input": x_tr,
        "train_label": law(x_tr),
        "test_input": x_te,
        "test_label": law(x_te),
    }
    # 30 steps: a [2, 1, 1] KAN this small lands in a usable model for some seeds and step
    # counts only (7 and 8 of 36 grids x steps x seeds gave the law, with the optimizer in
    # float32 as at 9c7d7ce and in float64 as now); this one does with either.
    model = train(adapter.make_kan([2, 1, 1], grid=5, k=3, seed=0), data, steps=30, lamb=0.0)
    found = fit_formula(model, data, variables=["u", "w"])
    u, w = sp.symbols("u w", real=True)
    assert sp.expand(found.expression - (u + 2 * w) ** 2) == 0
    assert [e.function for e in found.edges] == ["x", "x", "x^2"]
    assert os.listdir(tmp_path) == []


def test_the_last_layer_solve_is_optimal_and_leaves_masked_edges_alone():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(150, 2, generator=gen) * 2 - 1
    y = torch.sin(2 * x[:, :1]) + x[:, 1:] ** 2
    data = {"train_input": x, "train_label": y, "test_input": x, "test_label": y}
    model = train(adapter.make_kan([2, 3, 1], grid=5, k=3, seed=0), data, steps=3, lamb=0.0)
    last = model.act_fun[1]
    last.mask.data[0, 0] = 0.0  # a pruned edge of the last layer
    masked_coef = last.coef[0, 0].clone()
    before = adapter.rmse(model, x, y)
    assert solve_last_layer_splines(model, x, y)
    after = adapter.rmse(model, x, y)
    assert after < before
    torch.testing.assert_close(last.coef[0, 0], masked_coef)
    assert solve_last_layer_splines(model, x, y)  # already optimal: nothing to gain
    assert adapter.rmse(model, x, y) == pytest.approx(after, rel=1e-4)


def test_an_edge_takes_a_simpler_function_when_the_formula_does_not_need_more():
    """A sqrt fitted to a nearly straight spline becomes x when the validation error allows."""
    from emp_kan.symbolic.formula import EdgeFit
    from emp_kan.symbolic.formula_terms import evaluate_terms, swap_term
    from emp_kan.symbolic.term_search import simplify_edges

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(300, 2))
    y = 2 * x[:, 0] + 3 * x[:, 1]
    cands = [fit_edge(x[:, i], w * x[:, i], library=("x",)) for i, w in ((0, 2), (1, 3))]
    # c * sqrt(x + 10) + d with slope 2 at 0: nearly straight on [-1, 1], as a spline can be.
    c = 4 * np.sqrt(10.0)
    sqrt0 = EdgeCandidate("sqrt", 1.0, 10.0, c, -c * np.sqrt(10.0), 1e-3, 1 - 1e-6, 2, -3.0)
    cands[0] = [sqrt0, *cands[0]]
    lin1 = cands[1][0]
    terms, consts = swap_term([], [np.zeros(1)], (0, 0, 0), sqrt0, 1.0)
    terms, consts = swap_term(terms, consts, (0, 0, 1), lin1, 1.0)
    fits = {
        (0, 0, 0): EdgeFit(0, 0, 0, "sqrt", sqrt0.r2, cands[0]),
        (0, 0, 1): EdgeFit(0, 0, 1, "x", lin1.r2, cands[1]),
    }
    fit_xy, val_xy = (x[:240], y[:240]), (x[240:], y[240:])
    terms, consts = simplify_edges(terms, consts, fit_xy, val_xy, fits, [[1.0]], 30)
    assert fits[(0, 0, 0)].function == "x" and "simplified sqrt -> x" in fits[(0, 0, 0)].note
    assert {t.function for t in terms} == {"x"}
    pred = evaluate_terms(terms, consts, x[240:])[0]
    assert np.sqrt(np.mean((pred - y[240:]) ** 2)) < 1e-6
    # A function the data need stays: y = x0**2 cannot be written with x.
    y2 = x[:, 0] ** 2
    quad = [c for c in fit_edge(x[:, 0], y2, library=("x", "x^2")) if c.function == "x^2"][0]
    terms2, consts2 = swap_term([], [np.zeros(1)], (0, 0, 0), quad, 1.0)
    fits2 = {
        (0, 0, 0): EdgeFit(0, 0, 0, "x^2", quad.r2, fit_edge(x[:, 0], y2, library=("x", "x^2")))
    }
    simplify_edges(terms2, consts2, (x[:240], y2[:240]), (x[240:], y2[240:]), fits2, [[1.0]], 30)
    assert fits2[(0, 0, 0)].function == "x^2"


def test_a_slow_cosine_gives_way_to_the_parabola_it_imitates():
    """At equal complexity the simplicity pass prefers the algebraic function (x^2 over cos),
    but never a candidate that fits the edge much worse (x for a parabola)."""
    from emp_kan.symbolic.formula import EdgeFit
    from emp_kan.symbolic.formula_terms import swap_term
    from emp_kan.symbolic.term_search import simplify_edges

    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(300, 1))
    y = x[:, 0] ** 2
    fitted = fit_edge(x[:, 0], y, library=("x", "x^2"))
    # -200 * cos(0.1 x) + 200 = x^2 - x^4 / 1200 + ...: a spline cannot tell them apart.
    quad = next(c for c in fitted if c.function == "x^2")
    cos = EdgeCandidate("cos", 0.1, 0.0, -200.0, 200.0, quad.nrmse, quad.r2, 2, quad.cost - 0.01)
    terms, consts = swap_term([], [np.zeros(1)], (0, 0, 0), cos, 1.0)
    fits = {(0, 0, 0): EdgeFit(0, 0, 0, "cos", cos.r2, [cos, *fitted])}
    terms, consts = simplify_edges(
        terms, consts, (x[:240], y[:240]), (x[240:], y[240:]), fits, [[1.0]], 30
    )
    assert fits[(0, 0, 0)].function == "x^2"
    assert [t.function for t in terms] == ["x^2"]


def test_one_model_gives_one_formula_however_often_it_is_read():
    # MKL's default mode rounded products with the memory alignment: this model came back as
    # (u + 2w)^2 or as a slow sine, at random, before emp_kan asked MKL for reproducible results.
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(400, 2, generator=gen) * 2 - 1
    y = (x[:, :1] + 2 * x[:, 1:]) ** 2
    data = {
        "train_input": x[:200],
        "train_label": y[:200],
        "test_input": x[200:],
        "test_label": y[200:],
    }
    model = train(adapter.make_kan([2, 1, 1], grid=5, k=3, seed=0), data, steps=15, lamb=0.0)
    found = {
        str(fit_formula(adapter.clone_model(model), data, variables=["u", "w"]).expression)
        for _ in range(4)
    }
    assert len(found) == 1


def test_simplifying_a_high_power_of_a_sum_returns_at_once():
    # A log route mapped back once produced such a power; sp.cancel ran for 30 min in 9 GB.
    from emp_kan.symbolic.expression import simplify_expression

    a, b, c = sp.symbols("a b c", positive=True)
    expr = 2.5 * (0.3 * a + 0.2 * b + 0.1 * c + 1.7) ** 75 / (a + 1)
    out = simplify_expression(expr)  # multiplying out would take hours: the power must stay whole
    assert any(p.exp == 75 for p in out.atoms(sp.Pow))
    assert sp.count_ops(out) <= sp.count_ops(expr)


def test_simplifying_a_high_fractional_power_of_a_sum_returns_at_once():
    # Feynman I.39.11's log route, mapped back at the discover defaults: sp.cancel sees
    # (...)**(189/2) as sqrt(...)**189 and held a bench worker for minutes.
    from emp_kan.symbolic.expression import simplify_expression

    p_f, g, v = sp.symbols("p_F gamma V", real=True)
    inner = (
        0.0052 * sp.log(p_f)
        + 0.4986 * sp.sin(2 * g / 23 + 4.41)
        + 1
        - 0.003 / (v + 3 * sp.sqrt(2) / (22 * sp.sqrt(sp.pi)))
    )
    expr = 316300 * inner ** sp.Rational(189, 2) * sp.exp(sp.Rational(313, 6))
    out = simplify_expression(expr)
    assert any(p.exp == sp.Rational(189, 2) for p in out.atoms(sp.Pow))


def test_simplifying_a_sum_of_a_dozen_transcendental_pieces_returns_at_once():
    # Feynman eq. 15's data route at 1% noise: sp.cancel's polynomial gcd over these twelve
    # generators ran for minutes.
    from emp_kan.symbolic.expression import expansion_risk, simplify_expression

    g, m, z = sp.symbols("g m z", real=True)
    inner = (
        sp.log(g) / sp.sqrt(sp.pi)
        + sp.Rational(6, 11) * sp.log(m)
        - sp.pi * sp.cos(3 * z / 4 + 2) / 4
    )
    power = (
        sp.exp(-5) * sp.log(m)
        + sp.exp(sp.Rational(-9, 2)) * sp.log(2 - z)
        - 1 / (7 * sp.pi**2)
        - sp.Float(0.0091967884849849437) / (g + 1 / (2 * sp.sqrt(sp.pi)))
    ) ** -2
    expr = sp.Rational(10, 7) * sp.tanh(inner - 1) + sp.Rational(3, 2) - 0.00012759646 * power
    assert expansion_risk(expr)
    out = simplify_expression(expr)
    assert sp.count_ops(out) <= sp.count_ops(expr)
    # The largest laws of the Feynman list are still multiplied out and cancelled.
    x1, x2, y1, y2, z1, z2, m1, m2, big_g = sp.symbols("x1 x2 y1 y2 z1 z2 m1 m2 G")
    law = big_g * m1 * m2 / ((x2 - x1) ** 2 + (y2 - y1) ** 2 + (z2 - z1) ** 2)
    assert not expansion_risk(law)


def test_one_pruned_model_gives_one_formula_on_every_call():
    # A log-route model whose edge reads as exp(85*y/9): MINPACK's refit gave one of two
    # formulas by heap state here (docs/concepts.md, Determinism).
    from emp_kan.data.problems import formula_problem
    from emp_kan.discovery.config import DiscoverConfig
    from emp_kan.discovery.parallel import train_routes
    from emp_kan.discovery.run import make_pruner
    from emp_kan.pruning.rounds import prune_rounds

    problem = formula_problem("x*sin(y)", "x=0.5:2,y=0.5:3", samples=150)
    config = DiscoverConfig(hidden=(2,), grid=3, steps=8, round_steps=4, rounds=1, workers=1)
    route = next(r for r in train_routes(problem, config) if r.name == "log")
    pruned = prune_rounds(
        route.trained,
        route.problem.dataset,
        make_pruner("emp", config),
        rounds=config.rounds,
        steps=config.round_steps,
        lamb=config.lamb,
        schedule=config.schedule(),
        initial_steps=0,
        final_steps=config.steps,
        seed=config.seed,
        label_map=torch.exp,
    )
    formulas = set()
    for k in range(4):
        _heap_noise = [np.empty(17 * (k + 1) + j) for j in range(k * 5)]  # moves allocations
        formulas.add(
            str(
                fit_formula(
                    pruned,
                    route.problem.dataset,
                    variables=problem.variables,
                    library=config.library,
                    seed=config.seed,
                    validation=config.validation_fraction,
                ).expression
            )
        )
    assert len(formulas) == 1, formulas


def test_the_composition_search_finds_both_functions_of_a_link_together():
    # y = exp(sin(x)): the per-edge fits read the inner edge as tanh and the outer as x^2, and
    # neither swap alone helps; the pair (sin, exp), refitted end to end, is the law.
    from types import SimpleNamespace

    from emp_kan.symbolic.term_search import chain_search, terms_rmse_r2

    rng = np.random.default_rng(0)
    x_fit, x_val = rng.uniform(-2, 2, (300, 1)), rng.uniform(-2, 2, (100, 1))
    y_fit, y_val = np.exp(np.sin(x_fit[:, 0])), np.exp(np.sin(x_val[:, 0]))

    def candidate(function, a=1.0, b=0.0, c=1.0, d=0.0):
        return EdgeCandidate(function, a, b, c, d, nrmse=0.1, r2=0.99, complexity=2, cost=0.0)

    inner = SimpleNamespace(
        function="tanh",
        r2=0.99,
        note="",
        candidates=[candidate("tanh"), candidate("sin", 1.05, 0.05)],
    )
    outer = SimpleNamespace(
        function="x^2",
        r2=0.99,
        note="",
        candidates=[candidate("x^2", 1.0, 1.0, 0.6, 0.5), candidate("exp", 0.95, 0.0, 1.1)],
    )
    terms = [
        Term(0, 0, 0, "tanh", 1.0, 0.0, 1.0, 1.0, 0.0),
        Term(1, 0, 0, "x^2", 1.0, 1.0, 0.6, 1.0, 0.0),
    ]
    consts = [np.zeros(1), np.array([0.5])]
    terms, consts = refit_terms(terms, consts, x_fit, y_fit, 50)
    start_rmse, start_r2 = terms_rmse_r2(terms, consts, x_val, y_val)
    fits = {(0, 0, 0): inner, (1, 0, 0): outer}
    terms, _, rmse, _ = chain_search(
        terms,
        consts,
        fits,
        [[1.0], [1.0]],
        (x_fit, y_fit),
        (x_val, y_val),
        2,
        16,
        start_rmse,
        start_r2,
    )
    assert sorted(t.function for t in terms) == ["exp", "sin"]
    assert rmse < 1e-6 < start_rmse
    assert inner.function == "sin" and outer.function == "exp"


def test_roots_of_one_degree_are_taken_together_only_where_the_rows_allow():
    from emp_kan.symbolic.expression import finish_expression

    gamma, p, rho = sp.symbols("gamma p rho", real=True)
    split = sp.sqrt(gamma) * sp.sqrt(p) / sp.sqrt(rho)
    x = torch.rand(50, 3, generator=torch.Generator().manual_seed(0)) + 0.5
    y = torch.sqrt(x[:, 0] * x[:, 1] / x[:, 2])[:, None]
    assert finish_expression(split, [gamma, p, rho], x, y) == sp.sqrt(gamma * p / rho)
    # With gamma and p negative, sqrt(gamma)*sqrt(p) = -sqrt(gamma*p): the form is kept.
    negative = x * torch.tensor([-1.0, -1.0, 1.0])
    assert finish_expression(split, [gamma, p, rho], negative, y) == split


def test_a_formula_holding_complex_infinity_evaluates_to_not_finite_instead_of_failing():
    # a formula mapped back to the data's units can fold 1/0 into zoo (log route, Newton's law)
    x = sp.Symbol("x")
    expr = sp.exp(1 / (sp.log(x) ** 2 + sp.zoo))
    rows = torch.linspace(1.5, 2.0, 8).reshape(-1, 1)
    rmse, _ = evaluate_formula(expr, [x], rows, rows)
    assert not math.isfinite(rmse)
    assert snap_constants(sp.Float(0.5) * x + sp.zoo, [x], rows, rows) is not None


def test_identities_that_need_a_ranges_upper_end_count_by_their_square():
    # a Doppler factor of a speed ratio below 1, as the reciprocal-square transform writes it
    x = sp.Symbol("x")
    truth = (1 + x) / sp.sqrt(1 - x**2)
    assert is_exact_recovery(sp.sqrt((x + 1) / (1 - x)), truth, [x], ranges=[(0.1, 0.67)])
    assert not is_exact_recovery(
        sp.sqrt((x + 1) / (1 - x)) + x / 1000, truth, [x], ranges=[(0.1, 0.67)]
    )
    assert not is_exact_recovery(sp.sqrt((x + 2) / (1 - x)), truth, [x], ranges=[(0.1, 0.67)])


def test_a_constant_snaps_to_a_simple_multiple_of_pi_squared_or_its_reciprocal():
    from emp_kan.symbolic.expression import snap_constants

    x = sp.Symbol("x", real=True)
    xs = torch.linspace(0.5, 2.0, 50, dtype=torch.float64)[:, None]
    for constant in (1 / sp.pi**2, 3 * sp.pi**2 / 4):
        ys = float(constant) * xs**2
        found = snap_constants(sp.Float(float(constant)) * x**2, [x], xs, ys)
        assert sp.simplify(found - constant * x**2) == 0


def test_an_exponential_shift_snaps_to_a_power_of_e():
    # the Morse potential (1 - exp(-3*(r - 1)/2))**2 as the symbolic stage writes it
    from emp_kan.symbolic.expression import snap_constants

    r = sp.Symbol("r", real=True)
    truth = (1 - sp.exp(-3 * (r - 1) / 2)) ** 2
    xs = torch.linspace(0.6, 3.0, 60, dtype=torch.float64)[:, None]
    ys = torch.tensor([float(truth.subs(r, float(v))) for v in xs[:, 0]], dtype=torch.float64)
    fitted = sp.Float(float(sp.exp(3))) * (sp.exp(-3 * r / 2) - sp.Float(float(sp.exp(-1.5)))) ** 2
    found = snap_constants(fitted, [r], xs, ys[:, None])
    assert not found.atoms(sp.Float)
    assert sp.simplify(sp.expand(found - truth)) == 0
    # a constant 1% away from a power of e stays a float
    near = 1.01 * float(sp.exp(3))
    off = snap_constants(sp.Float(near) * r, [r], xs, near * xs)
    assert off.atoms(sp.Float)


def test_a_formula_holding_an_integer_beyond_int64_evaluates():
    from emp_kan.symbolic.expression import evaluate_formula

    x = sp.Symbol("x", real=True)
    huge = sp.Integer(241652272756479541743003369472)
    xs = torch.linspace(1.0, 2.0, 20, dtype=torch.float64)[:, None]
    ys = xs * float(sp.log(huge))
    rmse, r2 = evaluate_formula(x * sp.log(huge), [x], xs, ys)
    assert rmse == pytest.approx(0.0, abs=1e-9) and r2 == pytest.approx(1.0)


def test_numbers_snapped_in_rescaled_units_become_one_float_to_refit():
    from emp_kan.symbolic.expression import coefficients_as_floats

    m1, m2, r, t = sp.symbols("m1 m2 r T", positive=True)
    # 2/(3*pi**2) snapped in units of 1e-9, mapped back
    mapped = sp.Float(6.66666666666667e-10) * m1 * m2 / (sp.pi**2 * r**2)
    collapsed = coefficients_as_floats(mapped)
    assert collapsed.atoms(sp.Float) == {sp.Float(float(mapped / (m1 * m2 / r**2)))}
    assert not collapsed.has(sp.pi)
    assert sp.simplify(collapsed / mapped - 1).evalf() == pytest.approx(0, abs=1e-12)
    # exact numbers without a float stay: they were snapped in the data's own units
    exact = 2 * m1 / 3 + sp.pi * r
    assert coefficients_as_floats(exact) == exact
    inner = sp.Float(2.0) * sp.sqrt(2) * sp.exp(-sp.Float(1e3) * sp.Rational(2, 3) / t)
    assert not coefficients_as_floats(inner).has(sp.Rational(2, 3))


def test_constants_get_symbols_named_apart_from_the_variables():
    from emp_kan.symbolic.expression import lambdify_by_name, parameter_symbols

    params = parameter_symbols(2, ["_c0", "x"])
    assert not {str(p) for p in params} & {"_c0", "x"}
    x_real, x_plain = sp.Symbol("x", real=True), sp.Symbol("x")
    # A formula may hold one variable as two sympy symbols (declared real, and plain): both
    # are the same column.
    fn = lambdify_by_name(params[0] * x_real + x_plain**2 + params[1], ["x"], params)
    np.testing.assert_allclose(fn(np.array([1.0, 2.0]), 3.0, 0.5), [4.5, 10.5])
