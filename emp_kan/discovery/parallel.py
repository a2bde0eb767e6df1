"""The only module that knows about processes: routes trained, and the two methods run, side by
side in a forked child, with the same results as one after the other."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from emp_kan._runtime import threads
from emp_kan._runtime.forked import Child, usable_workers
from emp_kan._runtime.memo import Memo, Pending
from emp_kan.data.problems import Problem
from emp_kan.discovery.candidates import Candidate, route_candidates
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.routes import Route, plan_routes, settle_route, train_one, trial_order
from emp_kan.discovery.run import MethodRun, RunHook, chosen_run, make_pruner, run_method
from emp_kan.kan import adapter
from emp_kan.symbolic.products.search import product_search_ahead, product_search_key

__all__ = ["run_side_by_side", "train_routes"]


def _claim(counter: Any, total: int) -> int | None:
    """The next unclaimed route's index (shared between a process and its forked child), or
    None when every route is taken."""
    with counter.get_lock():
        index = counter.value
        if index >= total:
            return None
        counter.value = index + 1
        return index


def _train_claimed(
    routes: list[Route], config: DiscoverConfig, counter: Any, as_state: bool
) -> dict[int, tuple[str, Any, float]]:
    """Train routes one at a time, each claimed from ``counter``, until none is left."""
    out = {}
    while (index := _claim(counter, len(routes))) is not None:
        out[index] = train_one(routes[index], config, as_state)
    return out


def _search_ahead_then_train(
    routes: list[Route],
    problem: Problem,
    config: DiscoverConfig,
    counter: Any,
    ahead: bool,
) -> tuple[dict, tuple[str, Any] | None]:
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
        data_route = next(route for route in routes if route.log_transform is None)
        found = product_search_ahead(
            data_route.given_rows,
            list(range(len(problem.variables))),
            config.library,
            progress=config.progress,
        )
    except Exception:  # noqa: BLE001 - the run's own search will meet it and say so
        found = None
    return {}, found


@threads.single_threaded
def train_routes(
    problem: Problem,
    config: DiscoverConfig,
    only_first: bool = False,
    symbolic: bool = True,
    memo: Memo | None = None,
) -> list[Route]:
    """:func:`plan_routes`, each with its unpruned model trained by :func:`train_dense`.

    With ``only_first`` only the route :func:`run_method` tries first (:func:`trial_order`, with
    or without the ``symbolic`` stage) is trained; the others are returned untrained, for
    :func:`run_method` to train if it gets to them. An extra route whose training fails or
    diverges is left out (logged); the data route's failure raises.

    When ``config.workers`` allows, a forked child shares the work: given :func:`discover`'s
    ``memo``, where both methods' data routes will ask for it, it runs the product search
    while this process trains the routes, and goes on after this returns (its result is kept
    in the memo as pending, :class:`emp_kan._runtime.memo.Pending`, fetched when first asked
    for); elsewhere both processes claim the routes one at a time. Which process trains a route
    does not change its model.
    """
    import multiprocessing

    routes = plan_routes(problem, config)
    to_train = [routes[trial_order(routes, symbolic)[0]]] if only_first and routes else routes
    # Ahead only where it will be used: with discover's memo, on the data route, when that
    # route is trained now (a first route that holds the law leaves it untried).
    ahead = memo is not None and any(route.log_transform is None for route in to_train)
    counter = (
        multiprocessing.get_context("fork").Value("i", 0)
        if usable_workers(config.workers) > 1 and (len(to_train) > 1 or ahead)
        else None
    )
    child = (
        None
        if counter is None
        else Child(
            _search_ahead_then_train,
            (to_train, problem, config, counter, ahead),
            "the routes' training",
        )
    )
    try:
        if child is None:
            outcomes = {i: train_one(route, config, False) for i, route in enumerate(to_train)}
        elif ahead:  # the child only searches: both methods' data routes will ask for it
            outcomes = _train_claimed(to_train, config, counter, as_state=False)
            key = product_search_key(
                to_train[0].given_rows, list(range(len(problem.variables))), config.library
            )
            searching, child = child, None  # the pending result closes it from now on
            memo.remember(
                "products", key, Pending(lambda: _found_ahead(searching, key), searching.close)
            )
        else:
            outcomes = _train_claimed(to_train, config, counter, as_state=False)
            theirs, _ = child.result()
            outcomes.update(
                {
                    i: (
                        status,
                        (adapter.model_from_state(value[0]), value[1])
                        if status == "done"
                        else value,
                        seconds,
                    )
                    for i, (status, value, seconds) in theirs.items()
                }
            )
    finally:
        if child is not None:
            child.close()
    for index, route in enumerate(to_train):
        settle_route(route, config, *outcomes[index])
    return [route for route in routes if not route.left_out]


def _found_ahead(child: Child, key: str) -> Any:
    """The product search's result under ``key`` from the training child, or None where it
    has none."""
    _, found = child.result()
    return found[1] if found is not None and found[0] == key else None


@threads.single_threaded
def _claimed_routes(
    method: str,
    routes: list[Route],
    order: list[int],
    counter: Any,
    problem: Problem,
    config: DiscoverConfig,
    as_state: bool,
    memo: Memo | None,
) -> dict[int, list[Candidate]]:
    """``method``'s routes (indices in ``order``) claimed one at a time from ``counter``, each
    with its candidates; with ``as_state`` (a forked child's share) each pruned model goes
    back as a picklable state and each route as its index."""
    out = {}
    pruner = make_pruner(method, config)
    while (k := _claim(counter, len(order))) is not None:
        index = order[k]
        found = route_candidates(pruner, routes[index], problem, config, True, memo)
        if as_state and found:
            pruned = found[0].pruned  # one pruned model per route, shared by its candidates
            shipped = replace(pruned, model=adapter.model_state(pruned.model))
            found = [replace(c, route=index, pruned=shipped) for c in found]
        out[index] = found
    return out


def run_side_by_side(
    methods: tuple[str, ...],
    routes: list[Route],
    problem: Problem,
    config: DiscoverConfig,
    on_run: RunHook | None = None,
    memo: Memo | None = None,
) -> dict[str, MethodRun]:
    """:func:`run_method` for the two methods at once: the first in this process, the second
    in a forked child, which takes the second method's routes one at a time (the longest
    usually last in the list, so first here); when the first is done, this process takes the
    second method's routes still unclaimed, then hands the first run to ``on_run`` (and, where
    each method runs whole, see :func:`_run_each_whole`, the child the second). Each route's
    candidates are the same whichever process computes them (deterministic, reading only
    the trained routes), so the runs are those of one method after the other."""
    import multiprocessing

    first, second = methods
    if not config.all_routes:
        return _run_each_whole(methods, routes, problem, config, on_run, memo)
    order = list(reversed(range(len(routes))))
    counter = multiprocessing.get_context("fork").Value("i", 0)
    if memo is not None:  # the product search, if still running: passed on from here
        memo.share_pending_with_a_fork()
    child = Child(
        _claimed_routes,
        (second, routes, order, counter, problem, replace(config, progress=False), True, memo),
        f"the {second} run",
    )
    try:
        runs = {first: _run(first, routes, problem, config, memo)}
        found = _claimed_routes(second, routes, order, counter, problem, config, False, memo)
        if memo is not None:
            memo.settle_pending()
        if on_run is not None:  # while the child finishes its last route
            on_run(first, runs[first])
        for index, shipped in child.result().items():
            if shipped:
                pruned = replace(
                    shipped[0].pruned, model=adapter.model_from_state(shipped[0].pruned.model)
                )
                shipped = [replace(c, route=routes[index], pruned=pruned) for c in shipped]
            found[index] = shipped
    finally:
        child.close()
    runs[second] = chosen_run(
        second, [c for index in range(len(routes)) for c in found[index]], problem, config, True
    )
    return runs


def _run(
    method: str, routes: list[Route], problem: Problem, config: DiscoverConfig, memo: Memo | None
) -> MethodRun:
    return run_method(method, make_pruner(method, config), routes, problem, config, memo=memo)


def _whole_run_as_state(
    method: str,
    routes: list[Route],
    problem: Problem,
    config: DiscoverConfig,
    memo: Memo | None,
    on_run: RunHook | None,
) -> tuple[MethodRun, Any]:
    """A forked child's :func:`run_method`, its pruned model as a picklable state, and what
    ``on_run`` returned for it (None without)."""
    run = _run(method, routes, problem, config, memo)
    handed = on_run(method, run) if on_run is not None else None
    state = replace(run, pruned=replace(run.pruned, model=adapter.model_state(run.pruned.model)))
    return state, handed


def _run_each_whole(
    methods: tuple[str, ...],
    routes: list[Route],
    problem: Problem,
    config: DiscoverConfig,
    on_run: RunHook | None,
    memo: Memo | None,
) -> dict[str, MethodRun]:
    """:func:`run_method` for the two methods at once, the second whole in a forked child,
    which hands its run to ``on_run`` itself (the two runs' figures are drawn side by side).

    Each method stops at its own route (see :func:`run_method`), so the routes are not split
    between the processes: each trains the extra routes it gets to itself (the same model in
    either process)."""
    first, second = methods
    if memo is not None:  # the product search, if still running: passed on from here
        memo.share_pending_with_a_fork()
    child = Child(
        _whole_run_as_state,
        (second, routes, problem, replace(config, progress=False), memo, on_run),
        f"the {second} run",
    )
    try:
        runs = {first: _run(first, routes, problem, config, memo)}
        if memo is not None:
            memo.settle_pending()
        if on_run is not None:  # while the child finishes
            on_run(first, runs[first])
        shipped, handed = child.result()
    finally:
        child.close()
    if on_run is not None:
        on_run.results[second] = handed
    runs[second] = replace(
        shipped,
        pruned=replace(shipped.pruned, model=adapter.model_from_state(shipped.pruned.model)),
    )
    return runs
