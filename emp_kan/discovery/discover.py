"""The whole discovery: train once, then EMP rounds -> formula, and (for comparison) pykan's
threshold rounds -> the same symbolic stage, both from the same trained model."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from emp_kan._runtime.forked import usable_workers
from emp_kan._runtime.memo import Memo
from emp_kan.baselines.operon import run_operon
from emp_kan.data.groups import Groups, dimensionless_view
from emp_kan.data.problems import Problem, with_label_noise
from emp_kan.data.scaling import Scales, training_view
from emp_kan.data.split import Split
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.parallel import run_side_by_side, train_routes
from emp_kan.discovery.run import (
    MethodRun,
    RunHook,
    fewer_rows,
    make_pruner,
    run_in_data_units,
    run_method,
)
from emp_kan.discovery.summary import (
    carried_dimensions,
    constants_in_units,
    units_report,
    versions,
)
from emp_kan.symbolic.choice import choose_formula, noise_floor
from emp_kan.symbolic.expression import evaluate_formula

log = logging.getLogger("emp_kan")

# An inhomogeneous formula of the inputs replaces the groups' only below this share of its
# validation error: then the groups gave no law either.
_INHOMOGENEOUS_GAIN = 0.1

__all__ = ["WorkingView", "discover", "method_runs", "working_view"]


@dataclass(frozen=True)
class WorkingView:
    """The problem as the KAN works on it: reduced to dimensionless ``groups`` (with units;
    ``units_note`` says what the dimensional analysis did), rescaled by ``scales``, with fewer
    training rows (``fewer``); :meth:`in_data_units` maps a run back to the data as given."""

    problem: Problem
    work: Problem
    scales: Scales
    groups: Groups | None
    units_note: str
    fewer: bool

    @property
    def as_given(self) -> bool:
        """Whether the KAN works on the data as given (its runs need no mapping)."""
        return self.scales.identity and not self.fewer and self.groups is None

    def in_data_units(self, run: MethodRun, config: DiscoverConfig) -> MethodRun:
        """``run``, found on :attr:`work`, in the data's variables, units and rows."""
        return run_in_data_units(
            run, self.scales, self.problem, config, self.fewer, groups=self.groups
        )


def working_view(problem: Problem, config: DiscoverConfig, units: bool = True) -> WorkingView:
    """``problem`` (its noise added) as the KAN works on it (see :class:`WorkingView`); with
    ``units`` False, on its inputs as given whatever units it has. ValueError before any work
    for data no rescaling brings into float32."""
    # With units, the KAN learns the law between the dimensionless groups.
    if units:
        groups, view, units_note = dimensionless_view(problem)
    else:
        groups, view = None, problem
        units_note = "the formula of the groups was not at the noise floor; the inputs as given "
        units_note += "gave a better one"
    if problem.units and units:
        log.info("units: %s", units_note)
    # The KAN trains on columns near 1 in float32; the law is read back in the data's units.
    scales, work = training_view(view)
    if not scales.identity:
        log.info("columns rescaled by %s (inputs) and %g (label)", scales.inputs, scales.label)
    work, fewer = fewer_rows(work, config)
    return WorkingView(problem, work, scales, groups, units_note, fewer)


def discover(
    problem: Problem,
    config: DiscoverConfig,
    on_run: RunHook | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the pipeline on ``problem``.

    ``on_run``, if given, is called with each method's run, in the data's units, as soon as
    it is done, where the two methods run side by side in two processes (the CLI draws each
    run's figures there); see :class:`~emp_kan.discovery.run.RunHook`.

    Returns
    -------
    report : dict
        JSON-ready: the EMP run's summary at top level, ``baseline`` for the threshold run (or
        None), ``operon`` for pyoperon's run (or None), ``truth``, ``variables``, ``seed``,
        ``noise``, ``settings``, ``versions``.
    runs : dict of MethodRun
        ``"emp"`` and, when comparing, ``"threshold"``: models and formulas for pictures.
    """
    config = config.check()
    problem = with_label_noise(problem, config.noise, config.seed)
    methods = ("emp", "threshold") if config.compare else ("emp",)
    runs, views = method_runs(problem, methods, config, on_run)
    view, work = views["emp"], views["emp"].work
    report = _with_constant_units(runs["emp"], problem)
    report.update(
        {
            "dataset": problem.name,
            "variables": list(problem.variables),
            # a CSV column's own name, for each variable (and the target) named otherwise
            "columns": {k: v for k, v in problem.columns.items() if k != v},
            "target": problem.target,
            "truth": None if problem.truth is None else str(problem.truth),
            "seed": config.seed,
            "settings": {
                k: (list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(config).items()
                if k not in ("progress", "workers")
            },
            "versions": versions(),
            "noise": config.noise,
            "units": units_report(problem, view.groups, view.units_note),  # EMP's view
            # The KAN (and its checkpoint) works on input i divided by inputs[i] and predicts
            # the label divided by label; formulas and errors are in the data's units.
            "rows": {
                "train": int(problem.dataset["train_input"].shape[0]),
                "trained_on": int(work.dataset["train_input"].shape[0]),
                "test": int(problem.dataset["test_input"].shape[0]),
            },
            "scales": {
                "inputs": dict(zip(work.variables, view.scales.inputs, strict=True)),
                "label": view.scales.label,
            },
            "baseline": _with_constant_units(runs["threshold"], problem)
            if "threshold" in runs
            else None,
            "operon": run_operon(problem, config.seed, config.validation_fraction).summary()
            if config.operon
            else None,
        }
    )
    return report, runs


def _with_constant_units(run: MethodRun, problem: Problem) -> dict[str, Any]:
    """``run``'s summary, each constant with its units when ``problem`` has units."""
    summary = run.summary()
    summary["constants"] = constants_in_units(summary["constants"], run.formula.expression, problem)
    return summary


def method_runs(
    problem: Problem,
    methods: tuple[str, ...],
    config: DiscoverConfig,
    on_run: RunHook | None = None,
    symbolic: bool = True,
) -> tuple[dict[str, MethodRun], dict[str, WorkingView]]:
    """Each method's run on ``problem`` (its noise added), in the data's variables and units,
    and the view of the data it was found on (:class:`WorkingView`).

    With units, the KAN works on the dimensionless groups first; a method whose formula is not
    at the noise floor there is run again on the inputs as given, and the better of its two
    formulas on the validation rows is kept (the choice's rule: the simpler one where they
    tie), the second when it is dimensionally homogeneous or else ten times more accurate
    (with a warning that it is not). ``on_run`` as in
    :func:`discover` (with groups it is not called: a run may still change). Without
    ``symbolic`` (no formula: nothing to compare), the runs on the groups are kept.
    """
    view = working_view(problem, config)
    runs = _runs_on(view, methods, config, on_run if view.groups is None else None, symbolic)
    # A formula of the groups is homogeneous by construction; one of the inputs as given
    # replaces it when it is homogeneous too (a coefficient may carry units, a function may
    # not take a quantity with units), or, labelled, when it is ten times more accurate.
    views = dict.fromkeys(methods, view)
    if (
        symbolic
        and view.groups is not None
        and not all(_at_floor(r, problem, config) for r in runs.values())
    ):
        log.info("units: no formula of the groups at the noise floor; trying the inputs as given")
        plain = working_view(problem, config, units=False)
        for method, run in _runs_on(plain, methods, config, None).items():
            if not _better(run, runs[method], problem, config):
                continue
            if _homogeneous(run, problem):
                runs[method], views[method] = run, plain
            elif _validation_error(run, problem, config) < _INHOMOGENEOUS_GAIN * (
                _validation_error(runs[method], problem, config)
            ):  # the groups gave no law either: the better fit, labelled
                warning = (
                    "the formula is not dimensionally homogeneous under the units given "
                    "(no formula of their dimensionless groups came near it)"
                )
                formula = replace(run.formula, warnings=[*run.formula.warnings, warning])
                runs[method], views[method] = replace(run, formula=formula), plain
    return runs, views


def _runs_on(
    view: WorkingView,
    methods: tuple[str, ...],
    config: DiscoverConfig,
    on_run: RunHook | None,
    symbolic: bool = True,
) -> dict[str, MethodRun]:
    """Each method's run on ``view.work``, in the data's variables and units; ``on_run`` as
    in :func:`discover`; ``symbolic`` as in :func:`~emp_kan.discovery.run.run_method`."""
    mapped: dict[str, tuple[MethodRun, MethodRun]] = {}  # method: (run, in the data's units)

    def in_data_units(method: str, run: MethodRun) -> MethodRun:
        if method not in mapped or mapped[method][0] is not run:
            mapped[method] = (run, view.in_data_units(run, config))
        return mapped[method][1]

    if on_run is not None and not view.as_given:  # mapped once, used twice
        given = on_run.function
        on_run = RunHook(lambda m, run: given(m, in_data_units(m, run)), on_run.results)

    work = view.work
    with Memo() as memo:  # both methods' identical retraining and product search
        routes = train_routes(
            work, config, only_first=not config.all_routes, symbolic=symbolic, memo=memo
        )
        if len(methods) > 1 and usable_workers(config.workers) > 1 and symbolic:
            runs = run_side_by_side(methods, routes, work, config, on_run, memo)
        else:
            runs = {
                m: run_method(
                    m, make_pruner(m, config), routes, work, config, symbolic=symbolic, memo=memo
                )
                for m in methods
            }
    reused = memo.hits
    if reused:
        log.info(
            "work shared between the methods: %s",
            ", ".join(f"{n} {kind}" for kind, n in sorted(reused.items())),
        )
    return {m: in_data_units(m, run) for m, run in runs.items()}


def _validation_error(run: MethodRun, problem: Problem, config: DiscoverConfig) -> float:
    """``run``'s formula's RMSE on ``problem``'s validation rows (inf without a formula)."""
    if run.formula is None:
        return math.inf
    val = Split.of(problem.dataset, config.validation_fraction).validation
    rmse = evaluate_formula(run.formula.expression, run.formula.variables, val["x"], val["y"])[0]
    return rmse if math.isfinite(rmse) else math.inf


def _at_floor(run: MethodRun, problem: Problem, config: DiscoverConfig) -> bool:
    """Whether ``run``'s formula is at the noise floor on ``problem``'s validation rows."""
    val = Split.of(problem.dataset, config.validation_fraction).validation
    return _validation_error(run, problem, config) <= noise_floor(float(val["y"].std()))


def _better(
    challenger: MethodRun, incumbent: MethodRun, problem: Problem, config: DiscoverConfig
) -> bool:
    """Whether ``challenger``'s formula wins over ``incumbent``'s by the choice's rule
    (:func:`~emp_kan.symbolic.choice.choose_formula`) on ``problem``'s validation rows."""
    if challenger.formula is None:
        return False
    if incumbent.formula is None:
        return True
    val = Split.of(problem.dataset, config.validation_fraction).validation
    chosen = choose_formula(
        [incumbent.formula.complexity, challenger.formula.complexity],
        [_validation_error(r, problem, config) for r in (incumbent, challenger)],
        float(val["y"].std()),
        model_selection=config.model_selection,
        n_rows=int(val["y"].shape[0]),
    )
    return chosen == 1


def _homogeneous(run: MethodRun, problem: Problem) -> bool:
    """Whether ``run``'s formula has ``problem``'s target's units, each term's coefficient
    carrying what the rest of its term lacks (:func:`carried_dimensions`)."""
    return (
        run.formula is not None and carried_dimensions(run.formula.expression, problem) is not None
    )
