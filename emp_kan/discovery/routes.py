"""Routes: the views of a problem a KAN is trained in (the data as given, log|y| over log|x|,
log|y| over x), planned from the fit rows, trained, and left out with a warning when an extra
route fails."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

from emp_kan.data.problems import Problem
from emp_kan.data.split import Split
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.kan import adapter
from emp_kan.kan.capacity import CapacityStep, escalate
from emp_kan.kan.training import train
from emp_kan.symbolic.transform import (
    LogTransform,
    fit_log_transform,
)

log = logging.getLogger("emp_kan")

__all__ = [
    "Route",
    "ensure_trained",
    "plan_routes",
    "settle_route",
    "train_dense",
    "train_one",
    "trial_order",
]


@dataclass
class Route:
    """One view of the problem that a KAN is trained in: the data as given (``"none"``),
    ``log|y|`` over ``log|x_i|`` (``"log"``) or ``log|y|`` over ``x_i`` (``"log-y"``), with its
    trained unpruned model."""

    name: str  # "none", "log" or "log-y"
    log_transform: LogTransform | None  # None for the data as given
    problem: Problem  # in this route's space
    rows: Split  # problem.dataset's rows, carved once
    given_rows: Split  # the same rows of the data as given (the user's space)
    trained: Any = None  # None until trained (see train_routes' only_first)
    seconds: float = 0.0
    left_out: bool = False  # an extra route whose training failed or diverged (logged)
    capacity: list[CapacityStep] = field(default_factory=list)  # larger KANs tried


def plan_routes(problem: Problem, config: DiscoverConfig) -> list[Route]:
    """The routes ``config.route`` asks for, untrained.

    ``"auto"`` adds the log and log-y routes wherever they apply (no zero label, no zero input
    for "log", and a sign of the label that a product of the inputs' signs explains on the fit
    rows); ``"log"`` or ``"log-y"`` alone raises ValueError, before any training, when it does
    not apply.
    """
    routes = []
    given = Split.of(problem.dataset, config.validation_fraction)
    if config.route in ("auto", "none"):
        routes.append(Route("none", None, problem, given, given))
    fit = given.fit
    for name in ("log", "log-y"):
        if config.route not in ("auto", name):
            continue
        transform, why = fit_log_transform(
            fit["train_input"], fit["train_label"], log_inputs=name == "log"
        )
        if transform is not None:
            rows = given.map(transform.apply)
            routes.append(
                Route(
                    name, transform, replace(problem, dataset=rows.dataset, truth=None), rows, given
                )
            )
        elif config.route == name:
            raise ValueError(f"the {name} route does not apply: {why}; use route 'auto' or 'none'")
        else:
            log.info("%s transform skipped: %s", name, why)
    return routes


# The dense KAN trains with the sparsity penalty, which costs accuracy that pruning's
# unpenalised polish wins back (a default law's dense KAN sits at 2% of the label std and its
# pruned one at 0.02%): only an error well above the pruning floor says the KAN is too small.
_FAR_ABOVE_FLOOR = 5.0


def train_dense(route: Route, config: DiscoverConfig) -> tuple[Any, float, list[CapacityStep]]:
    """The unpruned KAN both pruning methods start from, trained on the route's fit rows only.

    Returns the trained model, the seconds it took and the larger KANs tried. The validation
    rows (see :class:`~emp_kan.data.split.Split`) are kept out of training so that the round
    loop and the symbolic stage can decide on them. On the data route (inputs and label as
    given), when the model's validation RMSE is above 5 x ``config.floor`` x the labels' std, up
    to ``config.capacity`` larger KANs are trained
    (:func:`~emp_kan.kan.capacity.escalate`) and the best on the validation rows is kept.
    """
    width = config.model_width(len(route.problem.variables))
    fit, val = route.rows.fit, route.rows.validation
    model = adapter.make_kan(width, grid=config.grid, k=config.k, seed=config.seed)
    start = time.perf_counter()
    # The larger KANs of the capacity ladder train as the first one did.
    training = {
        "steps": config.steps,
        "lamb": config.lamb,
        "seed": config.seed,
        "early_stopping": config.early_stopping,
    }
    trained = train(model, fit, **training)
    trained, tried = escalate(
        trained,
        fit,
        val,
        **training,
        enough=_FAR_ABOVE_FLOOR * config.floor * float(val["y"].std()),
        # The log routes hold products and exponentials of the inputs; a law that their KAN
        # cannot fit is not one of those, and more capacity there only costs time.
        budget=config.capacity if route.log_transform is None else 0,
    )
    return trained, time.perf_counter() - start, tried


def train_one(route: Route, config: DiscoverConfig, as_state: bool) -> tuple[str, Any, float]:
    """:func:`train_dense` on one route: ``("done", (model, capacity steps), seconds)`` or
    ``("failed", the exception, 0.0)``; with ``as_state`` the model as a picklable state (for
    a forked child)."""
    try:
        model, seconds, tried = train_dense(route, config)
    except (RuntimeError, ValueError) as exc:
        return "failed", exc, 0.0
    return "done", (adapter.model_state(model) if as_state else model, tried), seconds


def settle_route(
    route: Route, config: DiscoverConfig, status: str, value: Any, seconds: float
) -> None:
    """Give ``route`` the outcome of its training (see :func:`train_one`): its model, or, for
    an extra route that failed or diverged, ``left_out`` (logged). The first route's failure
    raises."""
    essential = route.log_transform is None or config.route != "auto"
    if status == "failed":
        if essential:
            raise value
        # An extra route is an attempt: log|x| of inputs near 0 has long tails, on which
        # training can diverge. The run goes on without it rather than failing.
        log.warning(
            "the %s route was left out: training failed (%s)",
            route.name,
            str(value).splitlines()[0][:120],
        )
        route.left_out = True
        return
    (route.trained, route.capacity), route.seconds = value, seconds
    if essential:
        return
    fit = route.rows.fit
    try:
        finite = math.isfinite(adapter.rmse(route.trained, fit["train_input"], fit["train_label"]))
    except (RuntimeError, ValueError) as exc:
        log.warning(
            "the %s route was left out: training failed (%s)",
            route.name,
            str(exc).splitlines()[0][:120],
        )
        finite = None
    else:
        if not finite:
            log.warning("the %s route was left out: training diverged", route.name)
    if not finite:
        route.trained, route.left_out = None, True


def ensure_trained(route: Route, config: DiscoverConfig) -> bool:
    """Train ``route`` if it is not yet (:func:`settle_route`); whether it has a model to prune."""
    if route.trained is None and not route.left_out:
        settle_route(route, config, *train_one(route, config, False))
    return not route.left_out


def trial_order(routes: list[Route], symbolic: bool = True) -> list[int]:
    """The order :func:`run_method` tries ``routes`` in (indices): the log route first, where
    there is one, since most physical laws are products of powers, which it reads as a sum
    with the fewest edges and without the product search; then the others in their order.
    Without the symbolic stage, the data route first (the one kept)."""
    first = "log" if symbolic else "none"
    return sorted(range(len(routes)), key=lambda k: (routes[k].name != first, k))
