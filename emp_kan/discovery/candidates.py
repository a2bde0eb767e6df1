"""One route pruned by one method: its pruned KAN and the candidate formulas read from it (the
symbolic stage's, the log route's power law, the product search's, the direct and label
transform fits)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
import torch

from emp_kan._runtime.memo import Memo, digest, recall
from emp_kan._runtime.numbers import finite_or_none
from emp_kan.data.groups import Groups, buckingham
from emp_kan.data.problems import Problem
from emp_kan.data.split import Split
from emp_kan.data.units import unit_dimensions
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.routes import Route
from emp_kan.kan import adapter
from emp_kan.kan.structure import elasticities
from emp_kan.pruning.records import PruneResult
from emp_kan.pruning.rounds import prune_rounds
from emp_kan.symbolic.choice import noise_floor
from emp_kan.symbolic.expression import evaluate_formula
from emp_kan.symbolic.formula import SymbolicFormula
from emp_kan.symbolic.group_polynomial import group_polynomial_expression, group_polynomials
from emp_kan.symbolic.pieces import read_structure
from emp_kan.symbolic.polynomial import (
    polynomial_expression,
    rational_expression,
    sparse_polynomials,
    sparse_rationals,
)
from emp_kan.symbolic.products.groups import group_arguments, group_direction, group_fits
from emp_kan.symbolic.products.search import finished_fits, product_formulas, signed_formulas
from emp_kan.symbolic.refit import refit_floats
from emp_kan.symbolic.search import fit_formula
from emp_kan.symbolic.transform import (
    LogTransform,
    direct_formulas,
    finished_expression,
    fit_log_transform,
    formula_in_original_space,
    formula_of_expression,
    formula_with_expression,
    label_transform_formulas,
    power_law_formula,
)

log = logging.getLogger("emp_kan")

__all__ = ["Candidate", "candidate_family", "is_kan_family", "route_candidates"]


@dataclass
class Candidate:
    """One formula of ``y`` (whatever the route's space) with the pruned model it came from."""

    # The route's name ("none", "log", "log-y"), "power-law" (the log route's straight-edge
    # reading over the inputs its pruned KAN kept), "power-law-all" (the same over every
    # input), "product-<k>" (a power law times one function of one input or monomial,
    # fitted to the data as given), "<route>-direct-<k>" (a library function fitted to one
    # input's data) or "<transform>-direct-<k>" (one fitted to y**2, exp(y) or 1/y).
    # "<route>-structure" is the sum of the route's pruned KAN's additive pieces, each solved
    # as a sparse sum (emp_kan.symbolic.pieces). "polynomial-<transform>" is a sparse
    # polynomial of the inputs fitted to y, y**2, 1/y or 1/y**2, "rational-<transform>" a
    # sparse ratio of two fitted to y or y**2 (emp_kan.symbolic.polynomial). With units,
    # "units-<transform>" is N(x) times a sparse polynomial or ratio of the dimensionless
    # groups fitted on y, y**2, 1/y, 1/y**2, log|y|, or sin(y) or cos(y) of an angle
    # (emp_kan.symbolic.group_polynomial).
    # "<route>-group-<k>" is a power law times one function of the monomial group along which
    # the route's pruned KAN's log-space gradients vary (emp_kan.symbolic.products.groups).
    name: str
    route: Route
    pruned: PruneResult
    formula: SymbolicFormula | None
    val_rmse: float
    timings: dict[str, float]
    structure: dict[str, Any] | None = None  # the route's pruned KAN's pieces (StructureReading)

    @property
    def family(self) -> str:
        """Where the formula comes from: ``"KAN edges"`` (the route's pruned KAN read edge by
        edge), ``"KAN structure"`` (its pieces as sparse sums), ``"KAN power law"`` (its
        straight edges in log space), ``"KAN group"`` (a function of the monomial group its
        log-space gradients vary along), or, read from the data without the KAN, ``"product
        search"``, ``"power law"`` (over every input), ``"polynomial fit"``, ``"units"``
        (with units, ``N(x)`` times a polynomial of the groups) and ``"direct fit"``."""
        return candidate_family(self.name, self.route.name)

    def to_dict(self, chosen: bool) -> dict[str, Any]:
        return {
            "candidate": self.name,
            "family": self.family,
            "route": self.route.name,
            "chosen": chosen,
            "formula": None if self.formula is None else str(self.formula.expression),
            "complexity": None if self.formula is None else self.formula.complexity,
            "val_rmse": finite_or_none(self.val_rmse),
            "test_rmse": (None if self.formula is None else finite_or_none(self.formula.test_rmse)),
            "edges": self.pruned.edges_alive,
        }


_KAN_FAMILIES = ("KAN edges", "KAN structure", "KAN power law", "KAN group")


def candidate_family(name: str, route: str) -> str:
    """The family of candidate ``name`` of route ``route`` (see :attr:`Candidate.family`)."""
    if name == route:
        return "KAN edges"
    if name.endswith("-structure"):
        return "KAN structure"
    if name == "power-law":
        return "KAN power law"
    if name.startswith(f"{route}-group-"):
        return "KAN group"
    if name.startswith("product-"):
        return "product search"
    if name == "power-law-all":
        return "power law"
    if name.startswith("units-"):
        return "units"
    if name.startswith(("polynomial-", "rational-")):
        return "polynomial fit"
    return "direct fit"


def is_kan_family(family: str) -> bool:
    """Whether a candidate of ``family`` was read from the pruned KAN."""
    return family in _KAN_FAMILIES


def _run_route(
    pruner: Any,
    route: Route,
    problem: Problem,
    config: DiscoverConfig,
    symbolic: bool,
    memo: Memo | None,
) -> list[Candidate]:
    """The route's pruned model and its candidate formulas: the symbolic stage's and, on the
    log route, the straight-edge power law over the inputs the pruned KAN kept."""
    start = time.perf_counter()
    pruned = prune_rounds(
        route.trained,
        route.rows,
        pruner,
        rounds=config.rounds,
        steps=config.round_steps,
        lamb=config.lamb,
        schedule=config.schedule(),
        initial_steps=0,
        final_steps=config.steps,
        seed=config.seed,
        early_stopping=config.early_stopping,
        progress=config.progress,
        label_map=None if route.log_transform is None else torch.exp,
        progress_label=f"{getattr(pruner, 'name', 'pruning')}, route {route.name}: attempts",
        memo=memo,
    )
    seconds_prune = time.perf_counter() - start
    start = time.perf_counter()
    if not symbolic:
        timings = {"train": route.seconds, "prune": seconds_prune, "symbolic": 0.0}
        return [Candidate(route.name, route, pruned, None, math.inf, timings)]
    formula = fit_formula(
        pruned,
        route.rows,
        variables=problem.variables,
        library=config.library,
        seed=config.seed,
        progress=config.progress,
        memo=memo,
    )
    if route.log_transform is None:
        formulas = _data_route_formulas(formula, route, problem, config, memo)
    else:
        formulas = _log_route_formulas(formula, pruned, route, problem)
    if len(problem.variables) == 1:
        formulas.update(_one_input_formulas(formula, route, config))
    if config.candidates == "kan":  # before the floor is judged: it must be the KAN's own
        formulas = {
            name: f
            for name, f in formulas.items()
            if is_kan_family(candidate_family(name, route.name))
        }
    val = route.given_rows.validation
    val_rmse = {
        name: evaluate_formula(f.expression, f.variables, val["x"], val["y"])[0]
        for name, f in formulas.items()
    }
    # A law already read to the noise floor leaves the structure nothing to add.
    floor = noise_floor(float(val["y"].std()))
    seek = not any(r <= floor for r in val_rmse.values())
    groups: list[SymbolicFormula] = []
    if seek and len(problem.variables) > 1:
        try:
            groups = _group_formulas(formula, pruned, route, config.library)
        except (ArithmeticError, ValueError, MemoryError, np.linalg.LinAlgError) as exc:
            # one candidate among many: its failure costs the run nothing else
            log.info("the %s route's KAN gave no group reading: %s", route.name, exc)
        for k, f in enumerate(groups):
            f.spline_test_rmse = formulas[route.name].spline_test_rmse
            name = f"{route.name}-group-{k + 1}"
            formulas[name] = f
            val_rmse[name] = evaluate_formula(f.expression, f.variables, val["x"], val["y"])[0]
    # On the log route a piece is a function of log x_i: its sparse sums only bend the power
    # law the route's own reading states, and on noisy data the bends fit the noise (Newton's
    # gravity at 1%: m1**0.99 chosen over m1).
    if route.log_transform is not None and route.log_transform.log_inputs:
        seek = False
    try:
        structure, reading = _structure_formula(formula, pruned, route, config, seek)
    except (ArithmeticError, ValueError, TypeError, MemoryError, np.linalg.LinAlgError) as exc:
        # one candidate among many: its failure costs the run nothing else
        log.info("the %s route's structure gave no formula: %s", route.name, exc)
        structure, reading = None, None
    polynomials = config.candidates == "all" and route.log_transform is None
    if seek and polynomials and len(problem.variables) > 1:
        for name, f in _polynomial_formulas(formula, route, memo).items():
            formulas[name] = f
            val_rmse[name] = evaluate_formula(f.expression, f.variables, val["x"], val["y"])[0]
    if structure is not None:
        formulas[f"{route.name}-structure"] = structure
        val_rmse[f"{route.name}-structure"] = evaluate_formula(
            structure.expression, structure.variables, val["x"], val["y"]
        )[0]
    timings = {
        "train": route.seconds,
        "prune": seconds_prune,
        "symbolic": time.perf_counter() - start,
    }
    return [
        Candidate(
            name,
            route,
            pruned,
            f,
            val_rmse[name],
            timings,
            reading,
        )
        for name, f in formulas.items()
    ]


def _structure_formula(
    formula: SymbolicFormula,
    pruned: PruneResult,
    route: Route,
    config: DiscoverConfig,
    solve: bool = True,
) -> tuple[SymbolicFormula | None, dict[str, Any]]:
    """The pruned KAN's additive pieces solved as sparse sums and added up
    (:func:`~emp_kan.symbolic.pieces.read_structure`), mapped to ``y``, every constant refitted
    jointly on the fit rows, then snapped on the validation rows (None when a piece has more
    than two inputs or could not be solved), and the pieces as :meth:`StructureReading.to_dict`
    gives them. Without ``solve`` only the pieces are read."""
    rows = route.rows
    reading = read_structure(
        pruned.model,
        (rows.fit["train_input"], rows.fit["train_label"]),
        (rows.validation["x"], rows.validation["y"]),
        formula.variables,
        config.library,
        solve,
    )
    names = [str(v) for v in formula.variables]
    if reading.expression is None:
        return None, reading.to_dict(names)
    expr = reading.expression
    if route.log_transform is not None:
        expr = route.log_transform.to_original(expr, list(formula.variables))
    fit = route.given_rows.fit
    expr = refit_floats(
        expr,
        formula.variables,
        fit["train_input"].double().numpy(),
        fit["train_label"].double().numpy()[:, 0],
    )
    found = formula_of_expression(formula, expr, route.given_rows, edges=[])
    found.spline_test_rmse = formula.spline_test_rmse
    return found, reading.to_dict(names)


def _data_route_formulas(
    formula: SymbolicFormula,
    route: Route,
    problem: Problem,
    config: DiscoverConfig,
    memo: Memo | None,
) -> dict[str, SymbolicFormula]:
    """The data route's formula, and the product search's and power law's over every input."""
    given = route.given_rows
    formulas = {route.name: formula}
    if config.candidates == "kan":
        return formulas
    # Over every input, not only the kept ones: a sum-KAN models a product badly, and
    # pruning it loses factors (m*r*v*sin(theta) pruned to 2 edges); an input the law
    # does not use gets a zero exponent, which the validation rows snap away.
    every_input = list(range(len(problem.variables)))
    found = product_formulas(
        formula, given, every_input, config.library, memo=memo, progress=config.progress
    )
    for k, f in enumerate(found):
        f.spline_test_rmse = formula.spline_test_rmse
        formulas[f"product-{k + 1}"] = f
    # The plain power law over every input too: the log route's reading uses the inputs
    # its pruned KAN kept, and a cut factor loses the monomial (q/(4*pi*epsilon*r)).
    log_transform, _ = fit_log_transform(given.fit["train_input"], given.fit["train_label"])
    if log_transform is not None and len(every_input) > 1:
        f = power_law_formula(formula, log_transform, every_input, given)
        f.spline_test_rmse = formula.spline_test_rmse
        formulas["power-law-all"] = f
    try:
        formulas.update(_units_formulas(formula, problem, given, memo))
    except (ArithmeticError, ValueError, MemoryError, np.linalg.LinAlgError) as exc:
        # one family among many: its failure costs the run nothing else
        log.info("the units' polynomials of the groups gave no formula: %s", exc)
    return formulas


def _units_formulas(
    formula: SymbolicFormula, problem: Problem, rows: Split, memo: Memo | None
) -> dict[str, SymbolicFormula]:
    """With units, ``N(x)`` times a sparse polynomial or ratio of the dimensionless groups,
    fitted on ``y`` (or ``y**2``, ``1/y``, ``1/y**2``, ``log|y|``, or ``sin(y)`` or
    ``cos(y)`` of an angle) in its own units
    (:func:`~emp_kan.symbolic.group_polynomial.group_polynomials`), its constants refitted
    jointly and snapped; keyed ``"units-<transform>"``, the best three. With no group it is
    ``C * N(x)``, the law by the pi theorem. Nothing without units, or where no product of
    the inputs has the label's units."""
    if not problem.units:
        return {}
    dimensions, target = unit_dimensions(problem.units, problem.variables, problem.target)
    groups = buckingham(dimensions, target, problem.variables, problem.target)
    if groups is None:
        return {}
    names = [str(v) for v in formula.variables]
    key = digest(rows.fit["train_input"], rows.fit["train_label"], rows.validation, names, "units")
    expressions = recall(
        memo, "units", key, lambda: _units_expressions(formula.variables, groups, rows)
    )
    return _formulas_of(formula, expressions, rows)


def _units_expressions(variables: list, groups: Groups, rows: Split, top: int = 3) -> dict:
    """:func:`_units_formulas`' expressions, finished, by name."""
    x_fit = rows.fit["train_input"].double().numpy()
    y_fit = rows.fit["train_label"].double().numpy()[:, 0]
    x_val = rows.validation["x"].double().numpy()
    y_val = rows.validation["y"].double().numpy()[:, 0]

    def of_groups(x: np.ndarray) -> np.ndarray:
        return groups.of_inputs(x) if groups.names else np.zeros((x.shape[0], 0))

    fits = group_polynomials(
        of_groups(x_fit),
        groups.normaliser_of(x_fit),
        y_fit,
        of_groups(x_val),
        groups.normaliser_of(x_val),
        y_val,
    )[:top]
    symbols = [sp.Symbol(n) for n in groups.names]
    in_inputs = dict(zip(symbols, groups.group_expressions(), strict=True))
    by_name = {str(v): v for v in variables}
    out = {}
    for fit in fits:
        expr = group_polynomial_expression(fit, symbols, groups.normaliser_expression())
        expr = expr.xreplace(in_inputs)
        expr = expr.xreplace({s: by_name[s.name] for s in expr.free_symbols})
        expr = refit_floats(expr, variables, x_fit, y_fit)
        expr = finished_expression(expr, variables, rows)
        if expr not in out.values():  # with no group every transform gives C * N(x)
            out[f"units-{fit.transform}"] = expr
    return out


def _polynomial_formulas(
    formula: SymbolicFormula, route: Route, memo: Memo | None = None, top: int = 2
) -> dict[str, SymbolicFormula]:
    """The ``top`` sparse polynomials of the inputs fitted to the labels or a transform of
    them (:func:`~emp_kan.symbolic.polynomial.sparse_polynomials`) and the best sparse ratio
    of polynomials where it is clearly better (:func:`~.sparse_rationals`), every constant
    refitted jointly on the fit rows as a formula of ``y``, then snapped on the validation
    rows; keyed ``"polynomial-<transform>"`` and ``"rational-<transform>"``. They read only
    the rows: ``memo`` hands another method's run on the same rows the same expressions."""
    given = route.given_rows
    names = [str(v) for v in formula.variables]
    key = digest(given.fit["train_input"], given.fit["train_label"], given.validation, names, top)
    expressions = recall(
        memo, "polynomials", key, lambda: _polynomial_expressions(formula.variables, given, top)
    )
    return _formulas_of(formula, expressions, given)


def _formulas_of(
    formula: SymbolicFormula, expressions: dict[str, Any], rows: Split
) -> dict[str, SymbolicFormula]:
    """``formula`` with each finished expression of a search on the rows (not read off the
    route's edges), measured again, by name."""
    formulas = {}
    for name, expr in expressions.items():
        found = formula_with_expression(formula, expr, rows, edges=[])
        found.spline_test_rmse = formula.spline_test_rmse
        formulas[name] = found
    return formulas


def _polynomial_expressions(variables: list, given: Split, top: int) -> dict[str, Any]:
    """:func:`_polynomial_formulas`' expressions, finished, by name."""
    x_fit = given.fit["train_input"].double().numpy()
    y_fit = given.fit["train_label"].double().numpy()[:, 0]
    x_val = given.validation["x"].double().numpy()
    y_val = given.validation["y"].double().numpy()[:, 0]
    sign = 1 if (y_fit > 0).all() else -1
    polynomials = sparse_polynomials(x_fit, y_fit, x_val, y_val)[:top]
    expressions = {
        f"polynomial-{fit.transform}": polynomial_expression(fit, variables, sign)
        for fit in polynomials
    }
    # a ratio only where it is clearly better than every polynomial: a polynomial is a ratio
    # with a constant denominator, and each candidate costs a refit and snapping
    best_polynomial = min((f.val_rmse for f in polynomials), default=math.inf)
    for fit in sparse_rationals(x_fit, y_fit, x_val, y_val)[:1]:
        if fit.val_rmse < 0.5 * best_polynomial:
            expressions[f"rational-{fit.transform}"] = rational_expression(fit, variables, sign)
    return {
        name: finished_expression(refit_floats(expr, variables, x_fit, y_fit), variables, given)
        for name, expr in expressions.items()
    }


def _log_route_formulas(
    formula: SymbolicFormula, pruned: PruneResult, route: Route, problem: Problem
) -> dict[str, SymbolicFormula]:
    """A log route's formula mapped back to ``y``, and (log-log) its straight-edge power law
    over the inputs the pruned KAN kept."""
    given = route.given_rows
    spline_rmse = _spline_rmse(pruned.model, route.log_transform, problem.dataset)
    inputs = _kept_inputs(pruned.model)
    formulas = {route.name: formula_in_original_space(formula, route.log_transform, given)}
    if route.log_transform.log_inputs:
        formulas["power-law"] = power_law_formula(formula, route.log_transform, inputs, given)
    for f in formulas.values():
        f.spline_test_rmse = spline_rmse
    return formulas


def _kept_inputs(model: Any) -> list[int]:
    """The input columns with a live first-layer edge in ``model``."""
    first = adapter.get_edge_masks(model)[0]
    return [i for i in range(first.shape[1]) if bool(first[:, i].any())]


def _group_formulas(
    formula: SymbolicFormula,
    pruned: PruneResult,
    route: Route,
    library: tuple[str, ...],
    top: int = 2,
) -> list[SymbolicFormula]:
    """The route's pruned KAN read as a power law over the inputs it kept times one function
    of the monomial group along which its log-space gradients vary
    (:func:`~emp_kan.kan.structure.elasticities`, :mod:`emp_kan.symbolic.products.groups`);
    the constants fitted on the fit rows of ``y``, snapped on the validation rows. Empty when
    the gradients vary along no single direction."""
    inputs = _kept_inputs(pruned.model)
    if not inputs:
        return []
    transform = route.log_transform
    gradients, weights = elasticities(
        pruned.model,
        route.rows.fit["train_input"],
        inputs,
        inputs_logged=transform is not None and transform.log_inputs,
        label_logged=transform is not None,
    )
    direction = group_direction(gradients, weights)
    log.debug("the %s route's KAN varies along %s over inputs %s", route.name, direction, inputs)
    if direction is None:
        return []
    fit = route.given_rows.fit
    x = fit["train_input"].double().numpy()
    y = fit["train_label"].double().numpy()[:, 0]
    fits = group_fits(x, y, group_arguments(direction, inputs), inputs, library, 2 * top)
    return signed_formulas(formula, finished_fits(fits, x, y), route.given_rows, top)


def _one_input_formulas(
    formula: SymbolicFormula, route: Route, config: DiscoverConfig
) -> dict[str, SymbolicFormula]:
    """For one input: library functions fitted straight to the route's data (and, on the data
    route, to transforms of the label)."""
    given = route.given_rows
    formulas = {}
    if route.log_transform is None:
        for name, f in label_transform_formulas(formula, given, config.library).items():
            f.spline_test_rmse = formula.spline_test_rmse
            formulas[name] = f
    for k, f in enumerate(
        direct_formulas(formula, route.log_transform, route.rows, given, config.library)
    ):
        f.spline_test_rmse = formula.spline_test_rmse
        formulas[f"{route.name}-direct-{k + 1}"] = f
    return formulas


def _spline_rmse(model: Any, transform: LogTransform, dataset: dict[str, Any]) -> float:
    """Test RMSE of ``y`` predicted by a log-route model (sign model times ``exp``)."""
    x, y = dataset["test_input"], dataset["test_label"]
    with torch.no_grad():
        log_prediction = adapter.forward_pass(model, transform.apply({"x": x})["x"])
        prediction = transform.to_label(log_prediction, x)
    return float(torch.sqrt(torch.mean((prediction - y) ** 2)))


def route_candidates(
    pruner: Any,
    route: Route,
    problem: Problem,
    config: DiscoverConfig,
    symbolic: bool,
    memo: Memo | None = None,
) -> list[Candidate]:
    """:func:`_run_route`, where an extra route's failure is logged and leaves no candidate."""
    if route.log_transform is None or config.route != "auto":
        return _run_route(pruner, route, problem, config, symbolic, memo)
    try:  # an extra route is an attempt: its failure must not cost the run
        return _run_route(pruner, route, problem, config, symbolic, memo)
    except (RuntimeError, ValueError, ArithmeticError, torch.linalg.LinAlgError) as exc:
        log.warning(
            "the %s route was left out: %s",
            route.name,
            str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__,
        )
        return []
