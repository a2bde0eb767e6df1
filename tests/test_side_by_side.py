"""discover runs EMP and the threshold baseline side by side: the same results, clear failures."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import torch

from emp_kan._runtime.forked import usable_workers
from emp_kan.data.problems import formula_problem
from emp_kan.discovery import discover, parallel
from emp_kan.discovery import routes as route_module
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.kan import adapter
from tests.conftest import different_tensors, report_differences

pytestmark = pytest.mark.skipif(usable_workers(2) < 2, reason="needs two CPUs and fork")

SMALL = {"hidden": (2,), "grid": 3, "steps": 8, "round_steps": 4, "rounds": 1}


def _problem():
    return formula_problem("x*sin(y)", "x=-1:1,y=0:6", samples=150)


def test_side_by_side_gives_the_report_and_models_of_one_after_the_other():
    problem = _problem()
    one, one_runs = discover.discover(problem, DiscoverConfig(workers=1, **SMALL))
    two, two_runs = discover.discover(problem, DiscoverConfig(workers=2, **SMALL))
    assert report_differences(one, two) == []
    assert "workers" not in two["settings"]  # how it ran is not a setting of the result
    model = two_runs["threshold"].pruned.model  # rebuilt from the child's state
    reference = one_runs["threshold"].pruned.model
    assert different_tensors(model, reference) == []
    x = problem.dataset["test_input"]
    assert torch.equal(adapter.forward_pass(model, x), adapter.forward_pass(reference, x))
    assert not multiprocessing.active_children()


def test_a_failure_in_the_baselines_process_is_raised_as_itself(monkeypatch):
    real = parallel.make_pruner

    def failing(method, config):
        if method == "threshold":
            raise ValueError("threshold settings are broken")
        return real(method, config)

    monkeypatch.setattr(parallel, "make_pruner", failing)
    with pytest.raises(ValueError, match="threshold settings are broken"):
        discover.discover(_problem(), DiscoverConfig(workers=2, **SMALL))
    assert not multiprocessing.active_children()


def test_a_baselines_process_that_dies_is_named_with_the_way_to_see_why(monkeypatch):
    def dying(method, routes, problem, config, memo, on_run):
        os._exit(3)  # the forked child's whole threshold run

    monkeypatch.setattr(parallel, "_whole_run_as_state", dying)
    with pytest.raises(RuntimeError, match=r"threshold run.s worker .*\(exit code 3\).*workers=1"):
        discover.discover(_problem(), DiscoverConfig(workers=2, **SMALL))
    assert not multiprocessing.active_children()


def test_with_every_route_a_baselines_process_that_dies_is_named_too(monkeypatch):
    real = parallel._claimed_routes

    def dying(method, routes, order, counter, problem, config, as_state, memo):
        if as_state:  # the forked child's share of the threshold run
            os._exit(3)
        return real(method, routes, order, counter, problem, config, as_state, memo)

    monkeypatch.setattr(parallel, "_claimed_routes", dying)
    with pytest.raises(RuntimeError, match=r"threshold run.s worker .*\(exit code 3\).*workers=1"):
        discover.discover(_problem(), DiscoverConfig(workers=2, all_routes=True, **SMALL))
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_whole_number_of_at_least_one(workers):
    with pytest.raises(ValueError, match="workers must be a whole number >= 1"):
        DiscoverConfig(workers=workers).check()


def test_no_more_workers_than_cpus():
    assert usable_workers(10_000) == len(os.sched_getaffinity(0))
    assert usable_workers(1) == 1


def _positive_problem():
    return formula_problem("x*y**2", "x=0.5:2,y=0.5:2", samples=120)


def test_routes_trained_in_a_child_are_the_models_trained_here():
    problem = _positive_problem()
    one = parallel.train_routes(problem, DiscoverConfig(workers=1, **SMALL))
    two = parallel.train_routes(problem, DiscoverConfig(workers=2, **SMALL))
    assert [r.name for r in one] == [r.name for r in two] == ["none", "log", "log-y"]
    for a, b in zip(one, two, strict=True):
        assert different_tensors(a.trained, b.trained) == [], a.name


def test_an_extra_route_failing_in_either_process_is_left_out_with_a_warning(monkeypatch, caplog):
    real = route_module.train_dense

    def failing(route, config):
        if route.name != "none":  # log and log-y, in whichever process claims them
            raise ValueError("diverged on purpose")
        return real(route, config)

    monkeypatch.setattr(route_module, "train_dense", failing)
    with caplog.at_level("WARNING", logger="emp_kan"):
        routes = parallel.train_routes(_positive_problem(), DiscoverConfig(workers=2, **SMALL))
    assert [r.name for r in routes] == ["none"]
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert left_out == [
        f"the {name} route was left out: training failed (diverged on purpose)"
        for name in ("log", "log-y")
    ]


def test_the_data_route_failing_fails_the_run_with_its_own_error(monkeypatch):
    def failing(route, config):
        raise ValueError("cannot train on purpose")

    monkeypatch.setattr(route_module, "train_dense", failing)
    with pytest.raises(ValueError, match="cannot train on purpose"):
        parallel.train_routes(_positive_problem(), DiscoverConfig(workers=2, **SMALL))
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("all_routes", [False, True])
def test_the_product_search_done_ahead_in_the_training_child_serves_both_methods(
    caplog, all_routes
):
    # Ahead where the data route is trained first: where no log route applies, or with every
    # route (three routes here).
    problem = _problem() if not all_routes else _positive_problem()
    one, _ = discover.discover(problem, DiscoverConfig(workers=1, all_routes=all_routes, **SMALL))
    with caplog.at_level("INFO", logger="emp_kan"):
        two, _ = discover.discover(
            problem, DiscoverConfig(workers=2, all_routes=all_routes, **SMALL)
        )
    assert report_differences(one, two) == []
    shared = [r.getMessage() for r in caplog.records if "work shared" in r.getMessage()]
    assert shared == ["work shared between the methods: 1 products"]  # EMP's, found here


def test_a_product_search_child_that_dies_costs_only_its_time(monkeypatch):
    # Both methods go on while the search runs ahead; if its process dies, the search is done
    # here when first asked for and passed on to the threshold run's process.
    problem = _problem()  # no log route: the data route is trained first, with the search
    one, _ = discover.discover(problem, DiscoverConfig(workers=1, **SMALL))

    def dying(*args, **kwargs):
        os._exit(3)

    monkeypatch.setattr(parallel, "product_search_ahead", dying)
    two, _ = discover.discover(problem, DiscoverConfig(workers=2, **SMALL))
    assert report_differences(one, two) == []
    assert not multiprocessing.active_children()


def _speaks(value):
    import logging
    import warnings

    logging.getLogger("emp_kan").warning("the child says %s", value)
    warnings.warn(f"the child warns {value}", RuntimeWarning, stacklevel=1)
    return value * 2


def test_a_childs_log_records_and_warnings_are_emitted_by_the_parent(caplog):
    from emp_kan._runtime.forked import Child

    with (
        caplog.at_level("WARNING", logger="emp_kan"),
        pytest.warns(RuntimeWarning, match="child warns 21"),
    ):
        assert Child(_speaks, (21,), "a test").result() == 42
    assert [r.getMessage() for r in caplog.records] == ["the child says 21"]
    assert not multiprocessing.active_children()


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle this exception")


def _fails_unpicklably():
    raise _Unpicklable("the real failure")


def test_an_exception_pickle_cannot_carry_comes_back_named():
    from emp_kan._runtime.forked import Child

    with pytest.raises(RuntimeError, match="_Unpicklable: the real failure"):
        Child(_fails_unpicklably, (), "a test").result()


def _claim_all(counter, total):
    claimed = []
    while (index := parallel._claim(counter, total)) is not None:
        claimed.append(index)
    return claimed


def test_the_two_processes_claim_every_route_once():
    # Routes are claimed one at a time by this process and the training child, so that the
    # one done first takes what is left: each index exactly once, whoever is faster.
    from emp_kan._runtime.forked import Child

    counter = multiprocessing.get_context("fork").Value("i", 0)
    child = Child(_claim_all, (counter, 2000), "a test")
    try:
        here = _claim_all(counter, 2000)
        theirs = child.result()
    finally:
        child.close()
    assert sorted(here + theirs) == list(range(2000))


@pytest.mark.parametrize("computes", ["here", "child", "either"])
def test_the_baselines_routes_give_the_same_run_whichever_process_computes_them(
    monkeypatch, computes
):
    # With every route, the child takes the threshold routes one at a time; once EMP is done, this
    # process takes those still unclaimed. Each split must give the run of workers=1.
    import time

    real = parallel._claimed_routes

    def waiting_for_the_other(method, routes, order, counter, problem, config, as_state, memo):
        idle = as_state if computes == "here" else not as_state
        if computes != "either" and idle:  # let the other process claim every route first
            deadline = time.monotonic() + 300
            while counter.value < len(order) and time.monotonic() < deadline:
                time.sleep(0.01)
        return real(method, routes, order, counter, problem, config, as_state, memo)

    problem = _positive_problem()
    one, _ = discover.discover(problem, DiscoverConfig(workers=1, all_routes=True, **SMALL))
    monkeypatch.setattr(parallel, "_claimed_routes", waiting_for_the_other)
    two, _ = discover.discover(problem, DiscoverConfig(workers=2, all_routes=True, **SMALL))
    assert [c["route"] for c in two["baseline"]["candidates"]].count("log-y") >= 1
    assert report_differences(one, two) == []
    assert not multiprocessing.active_children()


def test_reports_are_compared_by_value_where_formulas_print_differently():
    # The comparison above: equal functions in other forms pass, other values do not.
    a = {"formula": "x*(y + 1)", "test_rmse": 0.5, "timings": {"total": 1.0}, "latex": "a"}
    b = {"formula": "x + x*y", "test_rmse": 0.5, "timings": {"total": 2.0}, "latex": "b"}
    assert report_differences(a, b) == []
    assert report_differences(a, {**b, "formula": "x + 1.0000001*x*y"}) != []
    assert report_differences(a, {**b, "test_rmse": 0.5000001}) != []
