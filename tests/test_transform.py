"""The log route: log|y| over log|x|, its sign model, mapping formulas back, and the choice."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from emp_kan.data.problems import formula_problem, with_label_noise
from emp_kan.data.split import Split
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.discover import discover
from emp_kan.discovery.routes import plan_routes
from emp_kan.symbolic.choice import choose_formula, pareto_front
from emp_kan.symbolic.formula import SymbolicFormula
from emp_kan.symbolic.recovery import is_exact_recovery
from emp_kan.symbolic.transform import fit_log_transform, power_law_formula


def _rows(n=200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack(
        [
            torch.rand(n, generator=gen) * 2 - 1,  # both signs
            torch.rand(n, generator=gen) * 1.5 + 0.5,  # positive
            -(torch.rand(n, generator=gen) + 0.5),
        ],
        dim=1,
    )  # negative


def test_a_signed_product_maps_back_to_the_product_itself():
    x = _rows()
    y = (x[:, 0] / (4 * math.pi * x[:, 1] * x[:, 2] ** 2)).reshape(-1, 1)
    transform, why = fit_log_transform(x, y)
    assert why == "" and transform.parity == (1, 0, 0) and transform.input_signs == (0, 1, -1)
    q, e, r = sp.symbols("q e r", real=True)
    log_formula = q - e - 2 * r - sp.log(4 * sp.pi)  # what a KAN in log space should find
    back = transform.to_original(log_formula, [q, e, r])
    assert sp.simplify(back - q / (4 * sp.pi * e * r**2)) == 0
    assert not back.has(sp.Abs, sp.sign)


def test_a_log_formula_holding_a_huge_power_of_a_sum_maps_back_without_multiplying_it_out():
    # Read off eq. 47's log-y route at 1% noise: multiplied out, (k + 1/(8*pi**2))**2162 never
    # ended. Mapped back as it is, it keeps its value.
    from emp_kan.symbolic.transform import LogTransform

    a, g, k, v = sp.symbols("A gamma k_b v", real=True)
    inner = -704 * (a - sp.Rational(5, 2)) ** 2 - 718 * (g - 10 * sp.pi / 9) ** 2 + 1015849
    huge = (k + 1 / (8 * sp.pi**2)) ** 2162 * (v + sp.Float(0.000312)) ** 2049
    log_formula = sp.Rational(5032, 5) - sp.sqrt(inner - sp.log(huge))
    transform = LogTransform((1, 1, 1, 1), 1, (0, 0, 0, 0), log_inputs=False)
    back = transform.to_original(log_formula, [a, g, k, v])
    point = (2.0, 3.0, 1.0, 1.0)
    expected = math.exp(sp.lambdify([a, g, k, v], log_formula)(*point))
    assert sp.lambdify([a, g, k, v], back)(*point) == pytest.approx(expected, rel=1e-9)


@given(st.lists(st.integers(-3, 3), min_size=3, max_size=3), st.sampled_from([1.0, -2.5]))
def test_the_sign_model_and_exp_give_the_labels_back(exponents, scale):
    x = _rows(64, seed=1).double()
    y = scale * torch.prod(x ** torch.tensor(exponents, dtype=torch.float64), dim=1, keepdim=True)
    transform, _ = fit_log_transform(x, y)
    logged = transform.apply({"x": x, "y": y})
    assert torch.allclose(transform.to_label(logged["y"], x), y, rtol=1e-9)


@pytest.mark.parametrize(
    "labels, reason",
    [
        (lambda x: x[:, :1] * 0, "label is 0"),
        (lambda x: x[:, :1] + x[:, 1:2], "sign of the label"),
    ],
)
def test_no_log_route_where_it_cannot_hold(labels, reason):
    x = _rows()
    transform, why = fit_log_transform(x, labels(x))
    assert transform is None and reason in why


def test_asking_for_log_where_it_cannot_hold_fails_before_training():
    problem = formula_problem("x + y", "x=-1:1,y=-1:1", samples=50)
    with pytest.raises(ValueError, match="log route does not apply.*sign of the label"):
        plan_routes(problem, DiscoverConfig(route="log"))
    assert [r.name for r in plan_routes(problem, DiscoverConfig())] == ["none"]


def test_the_choice_prefers_the_simpler_of_two_exact_formulas():
    # Both at float32 rounding: the simpler wins even though the other is a little closer.
    assert choose_formula([12, 3], [2e-8, 3e-8], label_std=1.0) == 1
    # A simpler formula far less accurate than the best is not chosen.
    assert choose_formula([3, 12], [0.1, 1e-3], label_std=1.0) == 1
    # Within 1.5x of the best, PySR's score (log-error drop per complexity) decides.
    assert choose_formula([3, 40], [1.2e-3, 1e-3], label_std=1.0) == 1
    assert choose_formula([3, 4], [float("nan"), float("inf")], label_std=1.0) is None
    # Equal formulas: the smaller KAN.
    assert choose_formula([3, 3], [1e-9, 1e-9], label_std=1.0, sizes=[6, 3]) == 1


@given(st.lists(st.tuples(st.integers(1, 30), st.floats(1e-6, 1.0)), min_size=1, max_size=8))
def test_the_front_only_keeps_what_no_simpler_candidate_beats(candidates):
    complexities = [c for c, _ in candidates]
    rmses = [r for _, r in candidates]
    front = pareto_front(complexities, rmses)
    for i in front:
        assert not any(
            complexities[j] < complexities[i] and rmses[j] <= rmses[i]
            for j in range(len(candidates))
        )
    chosen = choose_formula(complexities, rmses, label_std=1.0)
    # Errors under the noise floor (1e-5 of the label spread) count as equal.
    assert chosen in front and max(rmses[chosen], 1e-5) <= 1.5 * max(min(rmses), 1e-5)


def _placeholder_formula(names):
    return SymbolicFormula(
        expression=sp.Integer(0),
        variables=sp.symbols(names, real=True),
        test_rmse=math.nan,
        test_r2=math.nan,
        train_rmse=math.nan,
        spline_test_rmse=math.nan,
        complexity=1,
        edges=[],
        explains_data=False,
        seconds=0.0,
    )


def test_the_power_law_reading_is_exact_for_a_monomial_over_the_kept_inputs():
    problem = formula_problem("-3*a*b**2/(4*pi*c)", "a=-1:1,b=0.5:2,c=0.5:2", samples=100)
    fit = Split.of(problem.dataset, 0.2).fit
    transform, _ = fit_log_transform(fit["train_input"], fit["train_label"])
    formula = _placeholder_formula(problem.variables)
    found = power_law_formula(formula, transform, [0, 1, 2], Split.of(problem.dataset, 0.2))
    assert (
        sp.simplify(
            found.expression
            - problem.truth.xreplace(
                {s: sp.Symbol(s.name, real=True) for s in problem.truth.free_symbols}
            )
        )
        == 0
    )
    assert found.test_rmse < 1e-5
    # Had pruning cut the input c, the power law cannot hold: its error says so.
    without_c = power_law_formula(formula, transform, [0, 1], Split.of(problem.dataset, 0.2))
    assert without_c.test_r2 < 0.9 and not without_c.expression.has(sp.Symbol("c", real=True))


def test_discover_finds_a_ratio_of_powers_through_the_log_route():
    problem = formula_problem("a*b**2/c", "a=-1:1,b=0.5:2,c=0.5:2", samples=200)
    config = DiscoverConfig(
        hidden=(2,), grid=3, steps=15, round_steps=5, rounds=2, compare=False, all_routes=True
    )
    report, runs = discover(problem, config)
    assert report["skipped_routes"] == []
    routes = {c["candidate"]: c for c in report["candidates"]}
    assert {"none", "log", "log-y", "power-law"} <= set(routes)
    assert sum(c["chosen"] for c in routes.values()) == 1
    # power-law-all is the same straight-edge reading over every input: equal on a monomial
    assert report["candidate"] in ("log", "power-law", "power-law-all")
    assert routes[report["candidate"]]["chosen"]
    assert is_exact_recovery(
        runs["emp"].formula.expression, problem.truth, problem.variables, ranges=problem.ranges
    )
    assert report["test_r2"] > 0.999
    assert np.isfinite(report["spline_test_rmse"])


def test_a_log_route_whose_training_fails_is_left_out_not_fatal(monkeypatch, caplog):
    from emp_kan.discovery import parallel
    from emp_kan.discovery import routes as route_module

    problem = formula_problem("a*b", "a=0.5:2,b=0.5:2", samples=40)
    config = DiscoverConfig(hidden=(2,), grid=3, steps=2, compare=False)
    real = route_module.train_dense

    def diverging(route, route_config):
        if route.name != "none":  # the log and log-y routes
            raise RuntimeError("lstsq: Argument 6 has illegal value")
        return real(route, route_config)

    monkeypatch.setattr(route_module, "train_dense", diverging)
    routes = parallel.train_routes(problem, config)
    assert [r.name for r in routes] == ["none"]
    assert "log route was left out" in caplog.text
    with pytest.raises(RuntimeError):  # asked for explicitly, a failure is the user's to see
        parallel.train_routes(problem, DiscoverConfig(hidden=(2,), steps=2, route="log"))


def test_routes_after_one_with_a_formula_at_the_noise_floor_are_skipped_and_named(caplog):
    problem = formula_problem("a*b**2/c", "a=-1:1,b=0.5:2,c=0.5:2", samples=200)
    config = DiscoverConfig(hidden=(2,), grid=3, steps=15, round_steps=5, rounds=2, compare=False)
    with caplog.at_level("INFO", logger="emp_kan"):
        report, runs = discover(problem, config)
    # The log route is tried first, and its power law is the law: the others could only tie.
    assert report["skipped_routes"] == ["none", "log-y"]
    assert "routes none, log-y skipped: route log has a formula at the noise floor" in caplog.text
    assert {c["route"] for c in report["candidates"]} == {"log"}
    assert is_exact_recovery(
        runs["emp"].formula.expression, problem.truth, problem.variables, ranges=problem.ranges
    )
    every, _ = discover(problem, replace(config, all_routes=True))
    assert {c["route"] for c in every["candidates"]} == {"none", "log", "log-y"}
    assert every["formula"] == report["formula"]


def test_every_route_runs_while_no_formula_reaches_the_noise_floor():
    # With label noise no formula can reach the floor: every route is trained and run.
    problem = formula_problem("a*b**2/c", "a=0.5:2,b=0.5:2,c=0.5:2", samples=200)
    config = DiscoverConfig(
        hidden=(2,), grid=3, steps=15, round_steps=5, rounds=2, compare=False, noise=0.05
    )
    report, _ = discover(problem, config)
    assert report["skipped_routes"] == []
    assert {c["route"] for c in report["candidates"]} == {"none", "log", "log-y"}


def test_routes_not_trained_ahead_are_trained_when_reached_and_left_out_if_they_fail(
    monkeypatch, caplog
):
    from emp_kan.discovery import parallel
    from emp_kan.discovery import routes as route_module
    from emp_kan.discovery import run as method_run

    config = DiscoverConfig(hidden=(2,), grid=3, steps=3, round_steps=2, rounds=1, compare=False)
    problem = with_label_noise(
        formula_problem("a*b", "a=0.5:2,b=0.5:2", samples=60), 0.05, seed=0
    )  # no formula at the floor: every route is reached
    routes = parallel.train_routes(problem, config, only_first=True)
    assert [r.name for r in routes] == ["none", "log", "log-y"]
    assert route_module.trial_order(routes) == [1, 0, 2]  # the log route first
    assert routes[1].trained is not None and routes[0].trained is routes[2].trained is None
    real = route_module.train_dense

    def failing_log_y(route, route_config):
        if route.name == "log-y":
            raise RuntimeError("lstsq: Argument 6 has illegal value")
        return real(route, route_config)

    monkeypatch.setattr(route_module, "train_dense", failing_log_y)
    with caplog.at_level("WARNING", logger="emp_kan"):
        run = method_run.run_method(
            "emp", method_run.make_pruner("emp", config), routes, problem, config
        )
    assert "log-y route was left out" in caplog.text
    assert routes[2].left_out and routes[0].trained is not None
    # Candidates in the routes' own order, whatever order they were tried in.
    assert list(dict.fromkeys(c["route"] for c in run.front)) == ["none", "log"]
    # Without the symbolic stage the data route is kept anyway: no other is trained.
    fresh = parallel.train_routes(problem, config, only_first=True, symbolic=False)
    assert fresh[0].trained is not None and fresh[1].trained is fresh[2].trained is None
    method_run.run_method(
        "emp", method_run.make_pruner("emp", config), fresh, problem, config, symbolic=False
    )
    assert fresh[1].trained is None and fresh[2].trained is None


def test_the_log_y_route_keeps_inputs_and_its_direct_fit_finds_a_composition():
    from emp_kan.symbolic.library import DEFAULT_LIBRARY
    from emp_kan.symbolic.transform import direct_formulas

    problem = formula_problem("exp(sin(x))", "x=-2:2", samples=200)
    routes = {r.name: r for r in plan_routes(problem, DiscoverConfig())}
    assert set(routes) == {"none", "log", "log-y"}
    log_y = routes["log-y"]
    assert not log_y.log_transform.log_inputs
    # Inputs as given, labels logged: log|exp(sin(x))| = sin(x).
    assert torch.equal(log_y.problem.dataset["train_input"], problem.dataset["train_input"])
    assert torch.allclose(
        log_y.problem.dataset["train_label"], torch.sin(problem.dataset["train_input"]), atol=1e-6
    )
    found = direct_formulas(
        _placeholder_formula(problem.variables),
        log_y.log_transform,
        log_y.rows,
        log_y.given_rows,
        DEFAULT_LIBRARY,
    )
    x = sp.Symbol("x", real=True)
    assert any(sp.simplify(f.expression - sp.exp(sp.sin(x))) == 0 for f in found)


@pytest.mark.parametrize(
    "law, ranges, candidate",
    [
        ("sqrt(x**2 + 1)", "x=-2:2", "square-direct"),  # y**2 = x**2 + 1
        ("log(cos(x) + 2)", "x=-3:3", "exp-direct"),  # exp(y) = cos(x) + 2
        ("1/(x**2 + 1)", "x=-2:2", "reciprocal-direct"),  # 1/y = x**2 + 1
    ],
)
def test_a_label_transform_turns_a_composition_into_one_library_function(law, ranges, candidate):
    from emp_kan.symbolic.library import DEFAULT_LIBRARY
    from emp_kan.symbolic.transform import label_transform_formulas

    problem = formula_problem(law, ranges, samples=200)
    found = label_transform_formulas(
        _placeholder_formula(problem.variables), Split.of(problem.dataset, 0.2), DEFAULT_LIBRARY
    )
    exact = [
        name
        for name, f in found.items()
        if is_exact_recovery(
            f.expression, problem.truth, problem.variables, test_r2=f.test_r2, ranges=problem.ranges
        )
    ]
    assert any(name.startswith(candidate) for name in exact), found


def test_label_transforms_apply_only_where_they_are_defined():
    from emp_kan.symbolic.library import DEFAULT_LIBRARY
    from emp_kan.symbolic.transform import label_transform_formulas

    problem = formula_problem("x**3", "x=-2:2", samples=100)  # both signs, y = 0 possible
    names = set(
        label_transform_formulas(
            _placeholder_formula(problem.variables), Split.of(problem.dataset, 0.2), DEFAULT_LIBRARY
        )
    )
    assert not any(n.startswith("square") for n in names)  # sqrt cannot give both signs


def test_the_power_law_over_every_input_is_a_candidate_of_the_data_as_given():
    problem = formula_problem("q/(4*pi*e*r)", "q=0.5:2,e=0.5:2,r=0.5:2", samples=200)
    config = DiscoverConfig(
        hidden=(2,), grid=3, steps=5, round_steps=3, rounds=1, compare=False, all_routes=True
    )
    report, _ = discover(problem, config)
    found = {c["candidate"]: c for c in report["candidates"]}["power-law-all"]
    assert found["route"] == "none"  # read beside the KAN of the data as given
    assert is_exact_recovery(
        found["formula"], problem.truth, problem.variables, ranges=problem.ranges
    )


@pytest.mark.parametrize("edges", [[], None])
def test_a_formula_rewritten_into_another_expression_does_not_carry_the_old_ones_warnings(edges):
    # A power law read off the data of a route whose own spline formula failed was exact, and
    # still said "do not use it as a result" (the README's example).
    from emp_kan.symbolic.formula import UNDEFINED_WARNING, unexplained_warning
    from emp_kan.symbolic.transform import formula_of_expression

    problem = formula_problem("x*y", "x=0.5:2,y=0.5:2", samples=200)
    x, y = sp.symbols("x y", real=True)
    process = "retraining after fixing layer 0 failed; skipped it"
    failed = SymbolicFormula(
        expression=sp.sqrt(x - 3),
        variables=[x, y],
        test_rmse=1.0,
        test_r2=-0.2,
        train_rmse=1.0,
        spline_test_rmse=0.1,
        complexity=4,
        edges=[],
        explains_data=False,
        seconds=0.0,
        warnings=[process, UNDEFINED_WARNING, unexplained_warning(-0.2)],
    )
    found = formula_of_expression(failed, x * y, Split.of(problem.dataset), edges=edges)
    assert found.explains_data and found.test_r2 > 0.999
    # The domain warning stays on the same expression mapped back (edges kept), not on a new one.
    assert found.warnings == ([process] if edges == [] else [process, UNDEFINED_WARNING])
    bad = formula_of_expression(failed, x * 0 + 7, Split.of(problem.dataset), edges=edges)
    assert any(w.startswith("the formula explains less") for w in bad.warnings)


def test_a_formula_at_the_floor_with_several_free_constants_does_not_end_the_routes():
    from types import SimpleNamespace

    from emp_kan.discovery.run import _enough

    gamma, v = sp.symbols("gamma V")
    validation = {"y": torch.linspace(0.0, 1.0, 60)}
    route = SimpleNamespace(given_rows=SimpleNamespace(validation=validation))

    def at_floor(expression):
        formula = SimpleNamespace(expression=expression)
        return [SimpleNamespace(val_rmse=1e-9, formula=formula, route=route)]

    config = DiscoverConfig()
    # a series in log(gamma) standing in for log(gamma - 1): the data route may name it
    series = v * sp.exp(sp.Float(0.33) * sp.log(gamma) - sp.Float(0.12) * sp.log(gamma) ** 2)
    assert not _enough(at_floor(series), None, config, True)
    # a law with one free scale is a law
    assert _enough(at_floor(sp.Float(0.0477) * v / gamma), None, config, True)
    assert _enough(at_floor(v / (gamma - 1)), None, config, True)
    assert not _enough(at_floor(series), None, replace(config, all_routes=True), True)
