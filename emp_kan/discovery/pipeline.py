"""The whole discovery: train once, then EMP rounds -> formula, and (for comparison) pykan's
threshold rounds -> the same symbolic stage, both from the same trained model."""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from emp_kan import __version__
from emp_kan._runtime.forked import Child, usable_workers
from emp_kan._runtime.memo import (
    Pending,
    remember,
    settle_pending,
    share_pending_with_a_fork,
    shared_work,
    sharing,
)
from emp_kan.baselines.operon import run_operon
from emp_kan.data.problems import Problem, split_validation, with_label_noise
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.kan import adapter
from emp_kan.pruning.pruners import EMPPruner, ThresholdPruner
from emp_kan.pruning.rounds import (
    PruneResult,
    prune_rounds,
    train,
)
from emp_kan.symbolic.choice import choose_formula, noise_floor
from emp_kan.symbolic.products.search import (
    product_formulas,
    product_search_ahead,
    product_search_key,
)
from emp_kan.symbolic.recovery import is_exact_recovery
from emp_kan.symbolic.search import SymbolicFormula, evaluate_formula, fit_formula
from emp_kan.symbolic.transform import (
    LogTransform,
    direct_formulas,
    fit_log_transform,
    formula_in_original_space,
    label_transform_formulas,
    power_law_formula,
)

log = logging.getLogger("emp_kan")

__all__ = ["Candidate", "DiscoverConfig", "MethodRun", "Route", "discover", "make_pruner",
           "plan_routes", "run_method", "train_dense", "train_routes", "trial_order",
           "versions"]


@dataclass
class MethodRun:
    """One pruning method's result within a discovery run."""

    name: str
    pruned: PruneResult
    formula: SymbolicFormula
    exact: bool | None
    timings: dict[str, float] = field(default_factory=dict)
    transform: str = "none"  # the chosen candidate's name (see Candidate.name)
    log_transform: LogTransform | None = None
    front: list[dict[str, Any]] = field(default_factory=list)  # every route's candidate
    skipped_routes: list[str] = field(default_factory=list)  # see run_method

    def summary(self, initial_widths: list[int]) -> dict[str, Any]:
        hist = self.pruned.to_dict()["history"]
        edges0 = sum(a * b for a, b in zip(initial_widths[:-1], initial_widths[1:], strict=True))
        return {
            "method": self.name,
            "formula": str(self.formula.expression),
            "latex": self.formula.latex(),
            "test_rmse": _num(self.formula.test_rmse),
            "test_r2": _num(self.formula.test_r2),
            "explains_data": self.formula.explains_data,
            "exact": self.exact,
            "complexity": self.formula.complexity,
            "spline_test_rmse": _num(self.pruned.final_test_rmse),
            "edges": {"initial": edges0, "final": self.pruned.edges_alive},
            "nodes": {
                "initial": sum(initial_widths[1:-1]),
                "final": sum(adapter.widths(self.pruned.model)[1:-1]),
            },  # fmt: skip
            "widths": adapter.widths(self.pruned.model),
            "stop_reason": self.pruned.stop_reason,
            "accept_below": _num(self.pruned.accept_below),
            "rejected_attempts": self.pruned.rejected_attempts,
            "spline_val_rmse": {"initial": _num(self.pruned.initial_val_rmse),
                                "final": _num(self.pruned.final_val_rmse)},  # fmt: skip
            # Every attempt, accepted or not: the decision used the val_* numbers only.
            "rounds": [
                {key: r[key] for key in (
                    "attempt", "round", "rung", "pruner", "accepted", "status", "edges_alive",
                    "nodes_alive", "val_rmse_before", "val_rmse_after_prune",
                    "val_rmse_after_retrain", "accept_below", "test_rmse_before",
                    "test_rmse_after_prune", "test_rmse_after_retrain", "layers")}
                for r in hist
            ],  # fmt: skip
            "timings": self.timings,
            "transform": self.transform,
            "candidates": self.front,
            "skipped_routes": self.skipped_routes,
            "symbolic_edges": self.formula.to_dict()["edges"],
            "warnings": self.formula.warnings + [w for r in hist for w in r["warnings"]],
        }


def _num(x: float) -> float | None:
    return None if x is None or x != x or x in (float("inf"), float("-inf")) else float(x)


def versions() -> dict[str, str]:
    """Versions of the parts that decide the numbers."""
    import numpy
    import sympy
    import torch

    try:
        from importlib.metadata import version

        pykan = version("pykan")
    except Exception:  # not installed as a distribution
        pykan = "unknown"
    return {"emp_kan": __version__, "pykan": pykan, "torch": torch.__version__,
            "numpy": numpy.__version__, "sympy": sympy.__version__,
            "python": platform.python_version()}  # fmt: skip


@dataclass
class Route:
    """One view of the problem that a KAN is trained in: the data as given (``"none"``),
    ``log|y|`` over ``log|x_i|`` (``"log"``) or ``log|y|`` over ``x_i`` (``"log-y"``), with its
    trained unpruned model."""

    name: str  # "none", "log" or "log-y"
    transform: LogTransform | None
    problem: Problem  # in this route's space
    trained: Any = None  # None until trained (see train_routes' only_first)
    seconds: float = 0.0
    left_out: bool = False  # an extra route whose training failed or diverged (logged)


def plan_routes(problem: Problem, config: DiscoverConfig) -> list[Route]:
    """The routes ``config.transform`` asks for, untrained.

    ``"auto"`` adds the log and log-y routes wherever they apply (no zero label, no zero input
    for "log", and a sign of the label that a product of the inputs' signs explains on the fit
    rows); ``"log"`` or ``"log-y"`` alone raises ValueError, before any training, when it does
    not apply.
    """
    routes = []
    if config.transform in ("auto", "none"):
        routes.append(Route("none", None, problem))
    fit, _ = split_validation(problem.dataset, config.validation)
    for name in ("log", "log-y"):
        if config.transform not in ("auto", name):
            continue
        transform, why = fit_log_transform(fit["train_input"], fit["train_label"],
                                           log_inputs=name == "log")  # fmt: skip
        if transform is not None:
            routes.append(Route(name, transform, replace(
                problem, dataset=transform.apply(problem.dataset), truth=None)))
        elif config.transform == name:
            raise ValueError(f"the {name} transform does not apply: {why}; use transform "
                             "'auto' or 'none'")  # fmt: skip
        else:
            log.info("%s transform skipped: %s", name, why)
    return routes


def train_dense(problem: Problem, config: DiscoverConfig) -> tuple[Any, float]:
    """The unpruned KAN both pruning methods start from, trained on the fit rows only.

    Returns the trained model and the seconds it took. The validation rows (the last share of
    the training rows, see :func:`emp_kan.data.problems.split_validation`) are kept out of
    training so that the round loop and the symbolic stage can decide on them.
    """
    width = config.model_width(len(problem.variables))
    fit, _ = split_validation(problem.dataset, config.validation)
    model = adapter.make_kan(width, grid=config.grid, k=config.k, seed=config.seed)
    start = time.perf_counter()
    trained = train(model, fit, steps=config.steps, lamb=config.lamb, seed=config.seed)
    return trained, time.perf_counter() - start


def _train_one(route: Route, config: DiscoverConfig, as_state: bool) -> tuple[str, Any, float]:
    """:func:`train_dense` on one route: ``("done", model, seconds)`` or ``("failed", the
    exception, 0.0)``; with ``as_state`` the model as a picklable state (for a forked child)."""
    try:
        model, seconds = train_dense(route.problem, config)
    except (RuntimeError, ValueError) as exc:
        return "failed", exc, 0.0
    return "done", adapter.model_state(model) if as_state else model, seconds


def _claim(counter: Any, total: int) -> int | None:
    """The next unclaimed route's index (shared between a process and its forked child), or
    None when every route is taken."""
    with counter.get_lock():
        index = counter.value
        if index >= total:
            return None
        counter.value = index + 1
        return index


def _train_claimed(routes: list[Route], config: DiscoverConfig, counter: Any,
                   as_state: bool) -> dict[int, tuple[str, Any, float]]:  # fmt: skip
    """Train routes one at a time, each claimed from ``counter``, until none is left."""
    out = {}
    while (index := _claim(counter, len(routes))) is not None:
        out[index] = _train_one(routes[index], config, as_state)
    return out


def _search_ahead_then_train(routes: list[Route], problem: Problem, config: DiscoverConfig,
                             counter: Any, ahead: bool,
                             ) -> tuple[dict, tuple[str, Any] | None]:  # fmt: skip
    """A forked child's share of :func:`train_routes`: with ``ahead``, the product search
    every method's data route will ask for (see :func:`_run_route`) and nothing else;
    without, routes claimed one at a time.

    After the search the child does not claim routes: it was forked before the training
    loops were compiled, so a route would cost it about 2 s of compiling first, while the
    parent, compiled by then, trains a default route in a fraction of a second.
    """
    if not ahead:
        return _train_claimed(routes, config, counter, as_state=True), None
    try:
        found = product_search_ahead(problem.dataset, list(range(len(problem.variables))),
                                     config.validation, config.library)  # fmt: skip
    except Exception:  # noqa: BLE001 - the run's own search will meet it and say so
        found = None
    return {}, found


@adapter.single_threaded
def train_routes(problem: Problem, config: DiscoverConfig, only_first: bool = False,
                 symbolic: bool = True) -> list[Route]:  # fmt: skip
    """:func:`plan_routes`, each with its unpruned model trained by :func:`train_dense`.

    With ``only_first`` only the route :func:`run_method` tries first (:func:`trial_order`, with
    or without the ``symbolic`` stage) is trained; the others are returned untrained, for
    :func:`run_method` to train if it gets to them. An extra route whose training fails or
    diverges is left out (logged); the data route's failure raises.

    When ``config.workers`` allows, a forked child shares the work: inside :func:`discover`'s
    shared work, where both methods' data routes will ask for it, it runs the product search
    while this process trains the routes, and goes on after this returns (its result is kept
    as pending, :class:`emp_kan._runtime.memo.Pending`, fetched when first asked for);
    elsewhere both processes claim the routes one at a time. Which process trains a route
    does not change its model.
    """
    import multiprocessing

    routes = plan_routes(problem, config)
    to_train = [routes[trial_order(routes, symbolic)[0]]] if only_first and routes else routes
    # Ahead only where it will be used: inside discover's shared work, on the data route,
    # when that route is trained now (a first route that holds the law leaves it untried).
    ahead = sharing() and any(route.transform is None for route in to_train)
    counter = multiprocessing.get_context("fork").Value("i", 0) if usable_workers(
        config.workers) > 1 and (len(to_train) > 1 or ahead) else None  # fmt: skip
    child = None if counter is None else Child(
        _search_ahead_then_train, (to_train, problem, config, counter, ahead),
        "the routes' training")  # fmt: skip
    try:
        if child is None:
            outcomes = {i: _train_one(route, config, False) for i, route in enumerate(to_train)}
        elif ahead:  # the child only searches: both methods' data routes will ask for it
            outcomes = _train_claimed(to_train, config, counter, as_state=False)
            key = product_search_key(problem.dataset, list(range(len(problem.variables))),
                                     config.validation, config.library)  # fmt: skip
            searching, child = child, None  # the pending result closes it from now on
            remember("products", key, Pending(lambda: _found_ahead(searching, key),
                                                searching.close))
        else:
            outcomes = _train_claimed(to_train, config, counter, as_state=False)
            theirs, _ = child.result()
            outcomes.update({i: (status, adapter.model_from_state(value) if status == "done"
                                 else value, seconds)
                             for i, (status, value, seconds) in theirs.items()})  # fmt: skip
    finally:
        if child is not None:
            child.close()
    for index, route in enumerate(to_train):
        _settle(route, config, *outcomes[index])
    return [route for route in routes if not route.left_out]


def _found_ahead(child: Child, key: str) -> Any:
    """The product search's result under ``key`` from the training child, or None where it
    has none."""
    _, found = child.result()
    return found[1] if found is not None and found[0] == key else None


def _settle(route: Route, config: DiscoverConfig, status: str, value: Any,
            seconds: float) -> None:  # fmt: skip
    """Give ``route`` the outcome of its training (see :func:`_train_one`): its model, or, for
    an extra route that failed or diverged, ``left_out`` (logged). The first route's failure
    raises."""
    essential = route.transform is None or config.transform != "auto"
    if status == "failed":
        if essential:
            raise value
        # An extra route is an attempt: log|x| of inputs near 0 has long tails, on which
        # training can diverge. The run goes on without it rather than failing.
        log.warning("the %s route was left out: training failed (%s)", route.name,
                    str(value).splitlines()[0][:120])  # fmt: skip
        route.left_out = True
        return
    route.trained, route.seconds = value, seconds
    if essential:
        return
    fit, _ = split_validation(route.problem.dataset, config.validation)
    try:
        finite = math.isfinite(adapter.rmse(route.trained, fit["train_input"],
                                            fit["train_label"]))  # fmt: skip
    except (RuntimeError, ValueError) as exc:
        log.warning("the %s route was left out: training failed (%s)", route.name,
                    str(exc).splitlines()[0][:120])  # fmt: skip
        finite = None
    else:
        if not finite:
            log.warning("the %s route was left out: training diverged", route.name)
    if not finite:
        route.trained, route.left_out = None, True


def _trained(route: Route, config: DiscoverConfig) -> bool:
    """Train ``route`` if it is not yet (:func:`_settle`); whether it has a model to prune."""
    if route.trained is None and not route.left_out:
        _settle(route, config, *_train_one(route, config, False))
    return not route.left_out


def make_pruner(method: str, config: DiscoverConfig) -> EMPPruner | ThresholdPruner:
    """The pruner of ``method`` ("emp" or "threshold") for these settings."""
    scores = {"edge_score": config.edge_score, "node_score": config.node_score}
    if method == "emp":
        return EMPPruner(target=config.prune, scope=config.scope, beta=config.beta, **scores)
    if method == "threshold":
        return ThresholdPruner(**scores)
    raise ValueError(f"unknown method {method!r}; use 'emp' or 'threshold'")


@dataclass
class Candidate:
    """One formula of ``y`` (whatever the route's space) with the pruned model it came from."""

    # The route's name ("none", "log", "log-y"), "power-law" (the log route's straight-edge
    # reading over the inputs its pruned KAN kept), "power-law-all" (the same over every
    # input), "product-<k>" (a power law times one function of one input or monomial,
    # fitted to the data as given), "<route>-direct-<k>" (a library function fitted to one
    # input's data) or "<transform>-direct-<k>" (one fitted to y**2, exp(y) or 1/y).
    name: str
    route: Route
    pruned: PruneResult
    formula: SymbolicFormula | None
    val_rmse: float
    timings: dict[str, float]

    def to_dict(self, chosen: bool) -> dict[str, Any]:
        return {"candidate": self.name, "transform": self.route.name, "chosen": chosen,
                "formula": None if self.formula is None else str(self.formula.expression),
                "complexity": None if self.formula is None else self.formula.complexity,
                "val_rmse": _num(self.val_rmse),
                "test_rmse": None if self.formula is None else _num(self.formula.test_rmse),
                "edges": self.pruned.edges_alive}  # fmt: skip


def _run_route(pruner, route: Route, problem: Problem, config: DiscoverConfig,
               symbolic: bool) -> list[Candidate]:  # fmt: skip
    """The route's pruned model and its candidate formulas: the symbolic stage's and, on the
    log route, the straight-edge power law over the inputs the pruned KAN kept."""
    start = time.perf_counter()
    pruned = prune_rounds(route.trained, route.problem.dataset, pruner, rounds=config.rounds,
                          steps=config.round_steps, lamb=config.lamb,
                          schedule=config.schedule(), initial_steps=0,
                          final_steps=config.steps, seed=config.seed,
                          progress=config.progress,
                          label_map=None if route.transform is None else torch.exp,
                          progress_label=f"{getattr(pruner, 'name', 'pruning')}, route "
                                         f"{route.name}: attempts")  # fmt: skip
    seconds_prune = time.perf_counter() - start
    start = time.perf_counter()
    if not symbolic:
        timings = {"train": route.seconds, "prune": seconds_prune, "symbolic": 0.0}
        return [Candidate(route.name, route, pruned, None, math.inf, timings)]
    formula = fit_formula(pruned, route.problem.dataset, variables=problem.variables,
                          library=config.library, seed=config.seed, progress=config.progress,
                          validation=config.validation)  # fmt: skip
    formulas = {route.name: formula}
    if route.transform is None:
        # Over every input, not only the kept ones: a sum-KAN models a product badly, and
        # pruning it loses factors (m*r*v*sin(theta) pruned to 2 edges); an input the law
        # does not use gets a zero exponent, which the validation rows snap away.
        every_input = list(range(len(problem.variables)))
        for k, f in enumerate(product_formulas(formula, problem.dataset, every_input,
                                               config.validation, config.library)):
            f.spline_test_rmse = formula.spline_test_rmse
            formulas[f"product-{k + 1}"] = f
        # The plain power law over every input too: the log route's reading uses the inputs
        # its pruned KAN kept, and a cut factor loses the monomial (q/(4*pi*epsilon*r)).
        fit, _ = split_validation(problem.dataset, config.validation)
        log_transform, _ = fit_log_transform(fit["train_input"], fit["train_label"])
        if log_transform is not None and len(every_input) > 1:
            f = power_law_formula(formula, log_transform, every_input, problem.dataset,
                                  config.validation)  # fmt: skip
            f.spline_test_rmse = formula.spline_test_rmse
            formulas["power-law-all"] = f
    if route.transform is not None:
        spline_rmse = _spline_rmse(pruned.model, route.transform, problem.dataset)
        inputs = [i for i in range(len(problem.variables))
                  if bool(adapter.get_edge_masks(pruned.model)[0][:, i].any())]  # fmt: skip
        formulas = {route.name: formula_in_original_space(formula, route.transform,
                                                          problem.dataset, config.validation)}
        if route.transform.log_inputs:
            formulas["power-law"] = power_law_formula(formula, route.transform, inputs,
                                                      problem.dataset, config.validation)
        for f in formulas.values():
            f.spline_test_rmse = spline_rmse
    if len(problem.variables) == 1 and route.transform is None:
        for name, f in label_transform_formulas(formula, problem.dataset, config.validation,
                                                config.library).items():
            f.spline_test_rmse = formula.spline_test_rmse
            formulas[name] = f
    if len(problem.variables) == 1:
        for k, f in enumerate(direct_formulas(formula, route.transform, route.problem.dataset,
                                              problem.dataset, config.validation,
                                              config.library)):  # fmt: skip
            f.spline_test_rmse = formula.spline_test_rmse
            formulas[f"{route.name}-direct-{k + 1}"] = f
    _, val = split_validation(problem.dataset, config.validation)
    timings = {"train": route.seconds, "prune": seconds_prune,
               "symbolic": time.perf_counter() - start}  # fmt: skip
    return [Candidate(name, route, pruned, f,
                      evaluate_formula(f.expression, f.variables, val["x"], val["y"])[0],
                      timings)
            for name, f in formulas.items()]  # fmt: skip


def _spline_rmse(model: Any, transform: LogTransform, dataset: dict[str, Any]) -> float:
    """Test RMSE of ``y`` predicted by a log-route model (sign model times ``exp``)."""
    x, y = dataset["test_input"], dataset["test_label"]
    with torch.no_grad():
        log_prediction = adapter.forward_pass(model, transform.apply({"x": x})["x"])
        prediction = transform.to_label(log_prediction, x)
    return float(torch.sqrt(torch.mean((prediction - y) ** 2)))


@adapter.single_threaded
def run_method(name: str, pruner: Any, routes: list[Route], problem: Problem,
               config: DiscoverConfig, symbolic: bool = True) -> MethodRun:  # fmt: skip
    """Prune each route's model with ``pruner`` in the round loop, fit its formula, and choose
    one formula on the validation rows (:func:`emp_kan.symbolic.choice.choose_formula`).

    The one orchestration of train -> prune -> formula: :func:`discover`, the bench and
    :class:`~emp_kan.EMPKANRegressor` all call it. Routes are tried in :func:`trial_order`
    (the log route first), and one not yet trained is trained when reached. Unless
    ``config.all_routes``, the run stops after the first route with a candidate at the noise
    floor on the validation rows (:func:`~emp_kan.symbolic.choice.noise_floor`): a later route
    could only tie with it, and the routes not tried are listed in the run's
    ``skipped_routes``. The candidates are chosen among in the routes' own order, so that with
    every route the choice is the one of trying them in that order. Without the symbolic stage
    there is nothing to compare routes by: only the data route is run.
    """
    found: dict[int, list[Candidate]] = {}
    for index in trial_order(routes, symbolic):
        route = routes[index]
        if not _trained(route, config):
            continue
        found[index] = _route_candidates(pruner, route, problem, config, symbolic)
        if _enough(found[index], problem, config, symbolic):
            break
    skipped = [r.name for k, r in enumerate(routes) if k not in found and not r.left_out]
    if skipped and symbolic:
        log.info("%s: routes %s skipped: route %s has a formula at the noise floor on the "
                 "validation rows", name, ", ".join(skipped), routes[index].name)
    candidates = [c for k in sorted(found) for c in found[k]]
    return _chosen_run(name, candidates, problem, config, symbolic, skipped)


def trial_order(routes: list[Route], symbolic: bool = True) -> list[int]:
    """The order :func:`run_method` tries ``routes`` in (indices): the log route first, where
    there is one, since most physical laws are products of powers, which it reads as a sum
    with the fewest edges and without the product search; then the others in their order.
    Without the symbolic stage, the data route first (the one kept)."""
    first = "log" if symbolic else "none"
    return sorted(range(len(routes)), key=lambda k: (routes[k].name != first, k))


def _enough(candidates: list[Candidate], problem: Problem, config: DiscoverConfig,
            symbolic: bool) -> bool:  # fmt: skip
    """Whether the routes after these (one route's) candidates can change nothing worth their
    time: without the symbolic stage the data route is kept anyway; with it, one candidate is
    at the noise floor on the validation rows (unless ``config.all_routes``)."""
    if not candidates:
        return False
    if not symbolic:
        return True
    if config.all_routes:
        return False
    _, val = split_validation(problem.dataset, config.validation)
    floor = noise_floor(float(val["y"].std()))
    return any(c.val_rmse <= floor for c in candidates)


def _route_candidates(pruner: Any, route: Route, problem: Problem, config: DiscoverConfig,
                      symbolic: bool) -> list[Candidate]:  # fmt: skip
    """:func:`_run_route`, where an extra route's failure is logged and leaves no candidate."""
    if route.transform is None or config.transform != "auto":
        return _run_route(pruner, route, problem, config, symbolic)
    try:  # an extra route is an attempt: its failure must not cost the run
        return _run_route(pruner, route, problem, config, symbolic)
    except (RuntimeError, ValueError, ArithmeticError, torch.linalg.LinAlgError) as exc:
        log.warning("the %s route was left out: %s", route.name,
                    str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
        return []


def _chosen_run(name: str, candidates: list[Candidate], problem: Problem,
                config: DiscoverConfig, symbolic: bool,
                skipped: list[str] | None = None) -> MethodRun:  # fmt: skip
    """The method's run: its candidates (every route's it ran, in route order) and the one
    chosen; ``skipped`` names the routes it did not run."""
    if not candidates:
        raise RuntimeError("every route failed; run with transform='none' to see why")
    chosen = 0
    if symbolic and len(candidates) > 1:
        _, val = split_validation(problem.dataset, config.validation)
        picked = choose_formula([c.formula.complexity for c in candidates],
                                [c.val_rmse for c in candidates], float(val["y"].std()),
                                [c.pruned.edges_alive for c in candidates])  # fmt: skip
        chosen = 0 if picked is None else picked
    best = candidates[chosen]
    exact = None
    if best.formula is not None and problem.truth is not None:
        exact = is_exact_recovery(best.formula.expression, problem.truth, problem.variables,
                                  test_r2=best.formula.test_r2, ranges=problem.ranges)  # fmt: skip
    per_route = {c.route.name: c.timings for c in candidates}.values()
    timings = {key: sum(t[key] for t in per_route) for key in ("train", "prune", "symbolic")}
    timings["total"] = sum(timings.values())
    front = [c.to_dict(i == chosen) for i, c in enumerate(candidates)]
    return MethodRun(name, best.pruned, best.formula, exact, timings, best.name,
                     best.route.transform, front, list(skipped or []))


@adapter.single_threaded
def _claimed_routes(method: str, routes: list[Route], order: list[int], counter: Any,
                    problem: Problem, config: DiscoverConfig,
                    as_state: bool) -> dict[int, list[Candidate]]:  # fmt: skip
    """``method``'s routes (indices in ``order``) claimed one at a time from ``counter``, each
    with its candidates; with ``as_state`` (a forked child's share) each pruned model goes
    back as a picklable state and each route as its index."""
    out = {}
    pruner = make_pruner(method, config)
    while (k := _claim(counter, len(order))) is not None:
        index = order[k]
        found = _route_candidates(pruner, routes[index], problem, config, symbolic=True)
        if as_state and found:
            pruned = found[0].pruned  # one pruned model per route, shared by its candidates
            shipped = replace(pruned, model=adapter.model_state(pruned.model))
            found = [replace(c, route=index, pruned=shipped) for c in found]
        out[index] = found
    return out


def _run_side_by_side(methods: tuple[str, ...], routes: list[Route], problem: Problem,
                      config: DiscoverConfig,
                      on_run: Callable[[str, MethodRun], None] | None = None,
                      ) -> dict[str, MethodRun]:  # fmt: skip
    """:func:`run_method` for the two methods at once: the first in this process, the second
    in a forked child, which takes the second method's routes one at a time (the longest
    usually last in the list, so first here); when the first is done, this process takes the
    second method's routes still unclaimed, then hands the first run to ``on_run``. Each route's
    candidates are the same whichever process computes them (deterministic, reading only
    the trained routes), so the runs are those of one method after the other."""
    import multiprocessing

    first, second = methods
    if not config.all_routes:
        return _run_each_whole(methods, routes, problem, config, on_run)
    order = list(reversed(range(len(routes))))
    counter = multiprocessing.get_context("fork").Value("i", 0)
    share_pending_with_a_fork()  # the product search, if still running: passed on from here
    child = Child(_claimed_routes, (second, routes, order, counter, problem,
                                    replace(config, progress=False), True),
                  f"the {second} run")  # fmt: skip
    try:
        runs = {first: run_method(first, make_pruner(first, config), routes, problem, config)}
        found = _claimed_routes(second, routes, order, counter, problem, config, False)
        settle_pending()
        if on_run is not None:  # while the child finishes its last route
            on_run(first, runs[first])
        for index, shipped in child.result().items():
            if shipped:
                pruned = replace(shipped[0].pruned,
                                 model=adapter.model_from_state(shipped[0].pruned.model))
                shipped = [replace(c, route=routes[index], pruned=pruned) for c in shipped]
            found[index] = shipped
    finally:
        child.close()
    runs[second] = _chosen_run(second, [c for index in range(len(routes)) for c in found[index]],
                               problem, config, True)  # fmt: skip
    return runs


def _whole_run_as_state(method: str, routes: list[Route], problem: Problem,
                        config: DiscoverConfig) -> MethodRun:  # fmt: skip
    """A forked child's :func:`run_method`, its pruned model as a picklable state."""
    run = run_method(method, make_pruner(method, config), routes, problem, config)
    return replace(run, pruned=replace(run.pruned, model=adapter.model_state(run.pruned.model)))


def _run_each_whole(methods: tuple[str, ...], routes: list[Route], problem: Problem,
                    config: DiscoverConfig,
                    on_run: Callable[[str, MethodRun], None] | None = None,
                    ) -> dict[str, MethodRun]:  # fmt: skip
    """:func:`run_method` for the two methods at once, the second whole in a forked child.

    Each method stops at its own route (see :func:`run_method`), so the routes are not split
    between the processes: each trains the extra routes it gets to itself (the same model in
    either process)."""
    first, second = methods
    share_pending_with_a_fork()  # the product search, if still running: passed on from here
    child = Child(_whole_run_as_state, (second, routes, problem,
                                        replace(config, progress=False)),
                  f"the {second} run")  # fmt: skip
    try:
        runs = {first: run_method(first, make_pruner(first, config), routes, problem, config)}
        settle_pending()
        if on_run is not None:  # while the child finishes
            on_run(first, runs[first])
        shipped = child.result()
    finally:
        child.close()
    runs[second] = replace(shipped, pruned=replace(
        shipped.pruned, model=adapter.model_from_state(shipped.pruned.model)))
    return runs


def discover(problem: Problem, config: DiscoverConfig,
             on_run: Callable[[str, MethodRun], None] | None = None,
             ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Run the pipeline on ``problem``.

    ``on_run(method, run)``, if given, is called with a method's run while another method
    still runs in a forked child (the CLI draws the finished run's figures there).

    Returns
    -------
    report : dict
        JSON-ready: the EMP run's summary at top level, ``baseline`` for the threshold run (or
        None), ``operon`` for pyoperon's run (or None), ``truth``, ``variables``, ``seed``,
        ``noise``, ``settings``, ``versions``.
    runs : dict of MethodRun
        ``"emp"`` and, when comparing, ``"threshold"``: models and formulas for pictures.
    """
    n_inputs = len(problem.variables)
    config.check(n_inputs)
    width = config.model_width(n_inputs)
    problem = with_label_noise(problem, config.noise, config.seed)
    methods = ("emp", "threshold") if config.compare else ("emp",)
    with shared_work() as reused:  # both methods' identical retraining and product search
        routes = train_routes(problem, config, only_first=not config.all_routes)
        if len(methods) > 1 and usable_workers(config.workers) > 1:
            runs = _run_side_by_side(methods, routes, problem, config, on_run)
        else:
            runs = {m: run_method(m, make_pruner(m, config), routes, problem, config)
                    for m in methods}  # fmt: skip
    if reused:
        log.info("work shared between the methods: %s",
                 ", ".join(f"{n} {kind}" for kind, n in sorted(reused.items())))  # fmt: skip
    report = runs["emp"].summary(width)
    report.update({
        "dataset": problem.name,
        "variables": list(problem.variables),
        "target": problem.target,
        "truth": None if problem.truth is None else str(problem.truth),
        "seed": config.seed,
        "settings": {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in asdict(config).items() if k not in ("progress", "workers")},
        "versions": versions(),
        "noise": config.noise,
        "baseline": runs["threshold"].summary(width) if "threshold" in runs else None,
        "operon": run_operon(problem, config.seed, config.validation).summary()
                  if config.operon else None,
    })  # fmt: skip
    return report, runs
