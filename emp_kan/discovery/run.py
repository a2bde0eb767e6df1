"""One method's run: each route pruned by its pruner, in the order routes are tried, until one
gives a formula at the noise floor; then one formula chosen among the candidates on the
validation rows."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import sympy as sp

from emp_kan._runtime import threads
from emp_kan._runtime.memo import Memo
from emp_kan._runtime.numbers import finite_or_none
from emp_kan.data.groups import Groups
from emp_kan.data.noise import neighbour_noise
from emp_kan.data.problems import Problem
from emp_kan.data.scaling import Scales
from emp_kan.data.split import Split, fewer_training_rows
from emp_kan.discovery.candidates import Candidate, route_candidates
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.routes import Route, ensure_trained, trial_order
from emp_kan.kan import adapter
from emp_kan.pruning.pruners import EMPPruner, ThresholdPruner
from emp_kan.pruning.records import PruneResult, in_label_units
from emp_kan.symbolic.choice import choose_formula, noise_floor, noise_tie
from emp_kan.symbolic.expression import coefficients_as_floats, evaluate_formula, numpy_xy
from emp_kan.symbolic.flat import flat_functions
from emp_kan.symbolic.formula import SymbolicFormula, trust_warnings, with_trust_warnings
from emp_kan.symbolic.recovery import is_exact_recovery
from emp_kan.symbolic.refit import refit_floats
from emp_kan.symbolic.transform import LogTransform, formula_of_expression
from emp_kan.symbolic.uncertainty import constants_with_errors, spans_decades

log = logging.getLogger("emp_kan")

__all__ = [
    "MethodRun",
    "RunHook",
    "chosen_run",
    "fewer_rows",
    "make_pruner",
    "run_in_data_units",
    "run_method",
]


@dataclass
class MethodRun:
    """One pruning method's result within a discovery run."""

    name: str
    pruned: PruneResult
    formula: SymbolicFormula
    exact: bool | None
    timings: dict[str, float] = field(default_factory=dict)
    candidate: str = "none"  # the chosen candidate's name (see Candidate.name)
    log_transform: LogTransform | None = None
    front: list[dict[str, Any]] = field(default_factory=list)  # every route's candidate
    skipped_routes: list[str] = field(default_factory=list)  # see run_method
    front_formulas: list[SymbolicFormula | None] = field(default_factory=list)  # front's
    scales: Scales | None = None  # the KAN works on the data divided by these (None: as given)
    groups: Groups | None = None  # ... and, first, reduced to these dimensionless groups
    structure: dict[str, Any] | None = None  # the chosen route's pruned KAN's pieces
    capacity: list[dict[str, Any]] = field(default_factory=list)  # the data route's larger KANs
    noise_estimate: dict[str, Any] | None = None  # see noise_estimate()
    constants: list[dict[str, Any]] = field(default_factory=list)  # the formula's, with errors

    def inputs(self) -> dict[str, list[str]]:
        """The inputs the pruned KAN kept (a live edge) and the ones it dropped, by name."""
        live = adapter.get_edge_masks(self.pruned.model)[0].any(dim=0).tolist()
        names = (
            list(self.groups.names)
            if self.groups is not None
            else [str(v) for v in self.formula.variables]
        )
        return {
            "kept": [n for n, alive in zip(names, live, strict=True) if alive],
            "dropped": [n for n, alive in zip(names, live, strict=True) if not alive],
        }

    def summary(self) -> dict[str, Any]:
        hist = self.pruned.to_dict()["history"]
        initial_widths = self.pruned.initial_widths
        edges0 = sum(a * b for a, b in zip(initial_widths[:-1], initial_widths[1:], strict=True))
        return {
            "method": self.name,
            "formula": str(self.formula.expression),
            "latex": self.formula.latex(),
            "test_rmse": finite_or_none(self.formula.test_rmse),
            "test_r2": finite_or_none(self.formula.test_r2),
            "explains_data": self.formula.explains_data,
            "exact": self.exact,
            "complexity": self.formula.complexity,
            "spline_test_rmse": finite_or_none(self.pruned.final_test_rmse),
            "edges": {"initial": edges0, "final": self.pruned.edges_alive},
            "nodes": {
                "initial": sum(initial_widths[1:-1]),
                "final": sum(adapter.widths(self.pruned.model)[1:-1]),
            },
            "widths": adapter.widths(self.pruned.model),
            "capacity": self.capacity,
            "noise_estimate": self.noise_estimate,
            "constants": self.constants,
            "stop_reason": self.pruned.stop_reason,
            "accept_below": finite_or_none(self.pruned.accept_below),
            "rejected_attempts": self.pruned.rejected_attempts,
            "spline_val_rmse": {
                "initial": finite_or_none(self.pruned.initial_val_rmse),
                "final": finite_or_none(self.pruned.final_val_rmse),
            },
            # Every attempt, accepted or not: the decision used the val_* numbers only.
            "rounds": [
                {
                    key: r[key]
                    for key in (
                        "attempt",
                        "round",
                        "rung",
                        "pruner",
                        "accepted",
                        "status",
                        "edges_alive",
                        "nodes_alive",
                        "val_rmse_before",
                        "val_rmse_after_prune",
                        "val_rmse_after_retrain",
                        "accept_below",
                        "test_rmse_before",
                        "test_rmse_after_prune",
                        "test_rmse_after_retrain",
                        "layers",
                    )
                }
                for r in hist
            ],
            "timings": self.timings,
            "candidate": self.candidate,
            "family": next((c["family"] for c in self.front if c["chosen"]), None),
            "source": candidate_source(self.candidate),
            "structure": self.structure,
            "inputs": self.inputs(),
            "candidates": self.front,
            "skipped_routes": self.skipped_routes,
            "symbolic_edges": self.formula.to_dict()["edges"],
            "warnings": self.formula.warnings + [w for r in hist for w in r["warnings"]],
        }


@dataclass
class RunHook:
    """``function(method, run)``, called with each method's run as soon as it is done, in the
    process that computed it (a forked child for a method run beside another), and what it
    returned, by method, in ``results``: the CLI draws each run's figures this way, the second
    method's in its child while this process draws the first's.

    ``function``'s value must pickle when it is computed in a child. A method it was not
    called for (with units, or one method at a time) has no entry in ``results``.
    """

    function: Callable[[str, MethodRun], Any]
    results: dict[str, Any] = field(default_factory=dict)

    def __call__(self, method: str, run: MethodRun) -> Any:
        self.results[method] = value = self.function(method, run)
        return value


# Candidates read from the pruned KAN: a route's own symbolic formula, its structure's sparse
# sums, and the log route's straight-edge power law over the inputs it kept. The others
# (product search, power law over every input, direct and label-transform fits) search the
# data themselves.
_FROM_NETWORK = ("none", "log", "log-y", "power-law")


_FREE_CONSTANTS = 1  # a formula at the noise floor with at most this many floats ends the routes


def candidate_source(candidate: str) -> str:
    """``"network"`` for a formula read from the pruned KAN, ``"data search"`` for one a search
    on the rows found (see :class:`~emp_kan.discovery.candidates.Candidate`)."""
    from_network = candidate in _FROM_NETWORK or candidate.endswith("-structure")
    return "network" if from_network else "data search"


def make_pruner(method: str, config: DiscoverConfig) -> EMPPruner | ThresholdPruner:
    """The pruner of ``method`` ("emp" or "threshold") for these settings."""
    scores = {"edge_score": config.edge_score, "node_score": config.node_score}
    if method == "emp":
        return EMPPruner(target=config.prune, scope=config.scope, beta=config.beta, **scores)
    if method == "threshold":
        return ThresholdPruner(**scores)
    raise ValueError(f"unknown method {method!r}; use 'emp' or 'threshold'")


@threads.single_threaded
def run_method(
    name: str,
    pruner: Any,
    routes: list[Route],
    problem: Problem,
    config: DiscoverConfig,
    symbolic: bool = True,
    memo: Memo | None = None,
) -> MethodRun:
    """Prune each route's model with ``pruner`` in the round loop, fit its formula, and choose
    one formula on the validation rows (:func:`emp_kan.symbolic.choice.choose_formula`).

    The one orchestration of train -> prune -> formula: :func:`discover`, the bench and
    :class:`~emp_kan.EMPKANRegressor` all call it. Routes are tried in :func:`trial_order`
    (the log route first), and one not yet trained is trained when reached. Unless
    ``config.all_routes``, the run stops after the first route with a candidate at the noise
    floor on the validation rows (:func:`~emp_kan.symbolic.choice.noise_floor`) and at most one
    free constant: a later route
    could only tie with it, and the routes not tried are listed in the run's
    ``skipped_routes``. The candidates are chosen among in the routes' own order, so that with
    every route the choice is the one of trying them in that order. Without the symbolic stage
    there is nothing to compare routes by: only the data route is run. ``memo`` keeps work
    another method's run on the same routes may repeat (see :class:`~emp_kan._runtime.memo.Memo`).
    """
    found: dict[int, list[Candidate]] = {}
    for index in trial_order(routes, symbolic):
        route = routes[index]
        if not ensure_trained(route, config):
            continue
        found[index] = route_candidates(pruner, route, problem, config, symbolic, memo)
        if _enough(found[index], problem, config, symbolic):
            break
    skipped = [r.name for k, r in enumerate(routes) if k not in found and not r.left_out]
    if skipped and symbolic:
        log.info(
            "%s: routes %s skipped: route %s has a formula at the noise floor on the "
            "validation rows",
            name,
            ", ".join(skipped),
            routes[index].name,
        )
    candidates = [c for k in sorted(found) for c in found[k]]
    return chosen_run(name, candidates, problem, config, symbolic, skipped)


def _enough(
    candidates: list[Candidate], problem: Problem, config: DiscoverConfig, symbolic: bool
) -> bool:
    """Whether the routes after these (one route's) candidates can change nothing worth their
    time: without the symbolic stage the data route is kept anyway; with it, one candidate is
    at the noise floor on the validation rows with at most one free constant (unless
    ``config.all_routes``)."""
    if not candidates:
        return False
    if not symbolic:
        return True
    if config.all_routes:
        return False
    val = candidates[0].route.given_rows.validation
    floor = noise_floor(float(val["y"].std()))
    # Several free constants at the floor may be a series standing in for a function the
    # route cannot name (log(gamma - 1) as a polynomial in log(gamma) on the log route); a
    # later route may state it exactly. A free scale alone is a law's constant.
    return any(
        c.val_rmse <= floor and len(c.formula.expression.atoms(sp.Float)) <= _FREE_CONSTANTS
        for c in candidates
    )


def chosen_run(
    name: str,
    candidates: list[Candidate],
    problem: Problem,
    config: DiscoverConfig,
    symbolic: bool,
    skipped: list[str] | None = None,
) -> MethodRun:
    """The method's run: its candidates (every route's it ran, in route order) and the one
    chosen; ``skipped`` names the routes it did not run."""
    if not candidates:
        raise RuntimeError("every route failed; run with route='none' to see why")
    chosen = 0
    given = candidates[0].route.given_rows
    flat = flat_candidates(candidates, given) if symbolic else [[] for _ in candidates]
    # a formula that uses a function as its own Taylor polynomial names a function the law
    # does not hold: it competes only when no other candidate has a finite error
    everywhere = not any(
        not f and math.isfinite(c.val_rmse) for c, f in zip(candidates, flat, strict=True)
    )
    rmses = [
        math.inf if f and not everywhere else c.val_rmse
        for c, f in zip(candidates, flat, strict=True)
    ]
    estimate = noise_estimate(candidates, given, rmses) if symbolic else None
    if symbolic and len(candidates) > 1:
        val = given.validation
        picked = choose_formula(
            [c.formula.complexity for c in candidates],
            rmses,
            float(val["y"].std()),
            [c.pruned.edges_alive for c in candidates],
            config.model_selection,
            n_rows=int(val["y"].shape[0]),
            noise_bound=noise_bound(estimate),
            floats=[len(c.formula.expression.atoms(sp.Float)) for c in candidates],
        )
        chosen = 0 if picked is None else picked
    best = candidates[chosen]
    if best.formula is not None:
        best = replace(best, formula=with_trust_warnings(best.formula))
        label = approximate_label(candidates, chosen)
        if label is not None:
            log.warning(label)
            # after the trust warnings, which say what a reader must know first
            best.formula.warnings.insert(len(trust_warnings(best.formula)), label)
    exact = None
    if best.formula is not None and problem.truth is not None:
        exact = is_exact_recovery(
            best.formula.expression,
            problem.truth,
            problem.variables,
            test_r2=best.formula.test_r2,
            ranges=problem.ranges,
        )
    constants = (
        constants_with_errors(best.formula.expression, best.formula.variables, given)
        if best.formula is not None
        else []
    )
    per_route = {c.route.name: c.timings for c in candidates}.values()
    timings = {key: sum(t[key] for t in per_route) for key in ("train", "prune", "symbolic")}
    timings["total"] = sum(timings.values())
    front = [
        {**c.to_dict(i == chosen), **({"flat": flat[i]} if flat[i] else {})}
        for i, c in enumerate(candidates)
    ]
    return MethodRun(
        name,
        best.pruned,
        best.formula,
        exact,
        timings,
        best.name,
        best.route.log_transform,
        front,
        list(skipped or []),
        [c.formula for c in candidates],
        structure=best.structure,
        noise_estimate=estimate,
        constants=constants,
        # only the data route escalates (see routes.train_dense)
        capacity=[
            step.to_dict()
            for step in next(
                (c.route.capacity for c in candidates if c.route.log_transform is None), []
            )
        ],
    )


def _chosen_in_label_units(
    front: list[dict[str, Any]],
    formulas: list[SymbolicFormula | None],
    chosen: int,
    validation: dict[str, Any],
    config: DiscoverConfig,
) -> int:
    """The candidate chosen again by the choice's rule on the validation rows of ``y``, among
    those of the chosen one's route (whose pruned KAN the run keeps), for a run found on
    dimensionless groups: there each row's error was divided by ``|N(x)|``, and on noisy
    labels the rows with small ``N`` made the choice (Kepler's third law at 1% noise chose
    ``6*sqrt(d**3/(G*m_2*(m_1/m_2 + 8/9)))`` over the law, whose error on ``y`` is a quarter
    of it). A candidate the first choice kept out as flat stays out."""
    route = front[chosen]["route"]
    among = [
        k
        for k, entry in enumerate(front)
        if entry["route"] == route
        and formulas[k] is not None
        and entry.get("val_rmse") is not None
        and not entry.get("flat")
    ]
    if chosen not in among or len(among) < 2:
        return chosen
    picked = choose_formula(
        [formulas[k].complexity for k in among],
        [front[k]["val_rmse"] for k in among],
        float(validation["y"].std()),
        [front[k]["edges"] for k in among],
        config.model_selection,
        n_rows=int(validation["y"].shape[0]),
        floats=[len(formulas[k].expression.atoms(sp.Float)) for k in among],
    )
    return chosen if picked is None else among[picked]


def noise_estimate(
    candidates: list[Candidate], rows: Split, rmses: list[float] | None = None
) -> dict[str, float | None]:
    """How noisy the labels look, three ways, each an upper bound of the noise's standard
    deviation: ``neighbours`` (model-free, :func:`~emp_kan.data.noise.neighbour_noise` on the
    fit rows; it also counts what the law changes between neighbours), ``network`` (the data
    route's pruned KAN's validation RMSE) and ``best_formula`` (the lowest validation RMSE of
    any candidate); and ``ties_below``, the validation RMSE below which candidates counted as
    equal in the choice (:func:`~emp_kan.symbolic.choice.noise_tie`, or the float32 floor),
    from ``rmses``, the validation RMSEs the choice saw (each candidate's own by default)."""
    x, y = numpy_xy(rows.fit["train_input"], rows.fit["train_label"])
    reference = next((c for c in candidates if c.route.log_transform is None), None)
    val_y = rows.validation["y"]
    own = [c.val_rmse for c in candidates]
    tie = max(noise_floor(float(val_y.std())), noise_tie(rmses or own, int(val_y.shape[0])))
    finite = [r for r in own if math.isfinite(r)]
    return {
        "neighbours": finite_or_none(neighbour_noise(x, y)),
        "network": None if reference is None else finite_or_none(reference.pruned.final_val_rmse),
        "best_formula": finite_or_none(min(finite)) if finite else None,
        "ties_below": finite_or_none(tie),
    }


def flat_candidates(candidates: list[Candidate], rows: Split) -> list[list[str]]:
    """For each candidate, the functions its formula uses as their own Taylor polynomial over
    the fit rows of ``rows`` (:func:`~emp_kan.symbolic.flat.flat_functions`)."""
    x = rows.fit["train_input"].double().numpy()
    return [
        [] if c.formula is None else flat_functions(c.formula.expression, c.formula.variables, x)
        for c in candidates
    ]


def noise_bound(estimate: dict[str, float | None] | None) -> float | None:
    """The tighter of ``estimate``'s two upper bounds of the noise (``neighbours`` and
    ``network``, see :func:`noise_estimate`), None when it has neither."""
    bounds = [estimate[k] for k in ("neighbours", "network") if estimate and estimate.get(k)]
    return min(bounds) if bounds else None


APPROXIMATE = "approximate:"
_APPROXIMATE_RATIO = 10.0


def approximate_label(candidates: list[Candidate], chosen: int) -> str | None:
    """The warning that labels the chosen candidate approximate, or None: when its validation
    RMSE is more than 10x the pruned KAN's on the data as given (the data route's), it names
    the ratio and the most accurate candidate."""
    reference = next((c for c in candidates if c.route.log_transform is None), None)
    if reference is None:
        return None
    network = reference.pruned.final_val_rmse
    mine = candidates[chosen].val_rmse
    if not (math.isfinite(network) and network > 0 and mine > _APPROXIMATE_RATIO * network):
        return None
    accurate = min(candidates, key=lambda c: c.val_rmse if math.isfinite(c.val_rmse) else math.inf)
    text = (
        f"{APPROXIMATE} the formula's validation error is {mine / network:.3g}x the pruned "
        "network's"
    )
    if accurate is not candidates[chosen] and accurate.formula is not None:
        text += (
            f"; the most accurate candidate, {accurate.name}, reads "
            f"{accurate.formula.expression} ({accurate.val_rmse / network:.3g}x)"
        )
    return text


def fewer_rows(work: Problem, config: DiscoverConfig) -> tuple[Problem, bool]:
    """``work`` with at most ``config.max_rows`` training rows
    (:func:`~emp_kan.data.split.fewer_training_rows`), and whether it had more (then
    :func:`run_in_data_units` measures the formulas again on all rows)."""
    dataset = fewer_training_rows(
        work.dataset, config.max_rows, config.validation_fraction, config.seed
    )
    n_given, n_kept = (d["train_input"].shape[0] for d in (work.dataset, dataset))
    if n_kept == n_given:
        return work, False
    log.info(
        "%d of %d training rows train the KAN (max_rows); formulas are measured on all rows",
        n_kept,
        n_given,
    )
    return replace(work, dataset=dataset), True


def run_in_data_units(
    run: MethodRun,
    scales: Scales,
    problem: Problem,
    config: DiscoverConfig,
    remeasure: bool = False,
    groups: Groups | None = None,
) -> MethodRun:
    """``run``, found on the data rescaled by ``scales`` (and, with ``remeasure``, on fewer
    training rows than ``problem`` has; with ``groups``, on ``problem``'s dimensionless
    groups), in the data's own units and variables and on all its rows: every candidate
    formula mapped back (constants snapped again on the validation rows, errors measured
    again, in float64), the pruned KAN's losses times the label's scale (with groups they stay
    the KAN's, of the dimensionless label), and the choice as it was, except that with
    ``groups`` it is made again on the validation rows of ``y`` among the chosen route's
    candidates (see :func:`_chosen_in_label_units`). Exactness is judged on the mapped
    formula."""
    if scales.identity and not remeasure and groups is None:
        return run
    rows = Split.of(problem.dataset, config.validation_fraction)
    val = rows.validation
    variables = [sp.Symbol(v, real=True) for v in problem.variables]
    fit_x, fit_y = numpy_xy(rows.fit["train_input"], rows.fit["train_label"])
    formulas = []
    front = []
    for entry, found in zip(run.front, run.front_formulas, strict=True):
        if found is None:
            formulas.append(None)
            front.append(entry)
            continue
        expr = scales.to_data_units(found.expression, found.variables)
        if groups is not None:
            expr = groups.to_data_units(expr)
            found = replace(found, variables=variables)
        if not scales.identity:
            # numbers snapped in rescaled units are refitted and snapped in the data's
            expr = refit_floats(
                coefficients_as_floats(expr),
                found.variables,
                fit_x,
                fit_y,
                relative=spans_decades(fit_y),
            )
        mapped = formula_of_expression(found, expr, rows, edges=None)
        mapped.spline_test_rmse = found.spline_test_rmse * scales.label
        formulas.append(mapped)
        front.append(
            dict(
                entry,
                formula=str(mapped.expression),
                complexity=mapped.complexity,
                val_rmse=finite_or_none(
                    evaluate_formula(mapped.expression, mapped.variables, val["x"], val["y"])[0]
                ),
                test_rmse=finite_or_none(mapped.test_rmse),
            )
        )
    first = chosen = next((k for k, entry in enumerate(front) if entry["chosen"]), 0)
    if groups is not None:
        chosen = _chosen_in_label_units(front, formulas, chosen, val, config)
        front = [dict(entry, chosen=k == chosen) for k, entry in enumerate(front)]
    formula = formulas[chosen] if formulas[chosen] is not None else run.formula
    if formula is not None:  # None: the symbolic stage did not run
        formula = with_trust_warnings(formula, run.formula.warnings if run.formula else ())
        # the label compares errors on the same rows in the same units: it stays as it was,
        # where the formula does
        kept = [
            w
            for w in (run.formula.warnings if run.formula and chosen == first else [])
            if w.startswith(APPROXIMATE)
        ]
        formula = replace(formula, warnings=kept + [w for w in formula.warnings if w not in kept])
    exact = run.exact
    if problem.truth is not None and formula is not None:
        exact = is_exact_recovery(
            formula.expression,
            problem.truth,
            problem.variables,
            test_r2=formula.test_r2,
            ranges=problem.ranges,
        )
    estimate = run.noise_estimate
    if estimate is not None:
        finite = [e["val_rmse"] for e in front if e.get("val_rmse") is not None]
        estimate = {
            "neighbours": finite_or_none(neighbour_noise(fit_x, fit_y)),
            # with groups the network's residuals are of the dimensionless label, not of y
            "network": None
            if estimate["network"] is None or groups is not None
            else estimate["network"] * scales.label,
            "best_formula": min(finite) if finite else None,
            "ties_below": None
            if estimate["ties_below"] is None or groups is not None
            else estimate["ties_below"] * scales.label,
        }
    return replace(
        run,
        candidate=front[chosen]["candidate"],
        noise_estimate=estimate,
        constants=[]
        if formula is None
        else constants_with_errors(formula.expression, formula.variables, rows),
        pruned=in_label_units(run.pruned, scales.label),
        formula=formula,
        exact=exact,
        front=front,
        front_formulas=formulas,
        scales=scales,
        groups=groups,
    )
