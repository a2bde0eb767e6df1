"""The whole discovery: train once, then EMP rounds -> formula, and (for comparison) pykan's
threshold rounds -> the same symbolic stage, both from the same trained model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from emp_kan._runtime.forked import usable_workers
from emp_kan._runtime.memo import Memo
from emp_kan.baselines.operon import run_operon
from emp_kan.data.problems import Problem, with_label_noise
from emp_kan.data.scaling import training_view
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.parallel import run_side_by_side, train_routes
from emp_kan.discovery.run import (
    MethodRun,
    fewer_rows,
    make_pruner,
    run_in_data_units,
    run_method,
)
from emp_kan.discovery.summary import versions

log = logging.getLogger("emp_kan")

__all__ = ["discover"]


def discover(
    problem: Problem,
    config: DiscoverConfig,
    on_run: Callable[[str, MethodRun], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
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
    config = config.check()
    problem = with_label_noise(problem, config.noise, config.seed)
    # The KAN trains on columns near 1 in float32; the law is read back in the data's units.
    scales, work = training_view(problem)
    if not scales.identity:
        log.info("columns rescaled by %s (inputs) and %g (label)", scales.inputs, scales.label)
    work, fewer = fewer_rows(work, config)
    methods = ("emp", "threshold") if config.compare else ("emp",)
    mapped: dict[str, tuple[MethodRun, MethodRun]] = {}  # method: (run, in the data's units)

    def in_data_units(method: str, run: MethodRun) -> MethodRun:
        if method not in mapped or mapped[method][0] is not run:
            mapped[method] = (run, run_in_data_units(run, scales, problem, config, fewer))
        return mapped[method][1]

    if on_run is not None and not (scales.identity and not fewer):
        given = on_run

        def on_run(method: str, run: MethodRun) -> None:  # mapped once, used twice
            given(method, in_data_units(method, run))

    with Memo() as memo:  # both methods' identical retraining and product search
        routes = train_routes(work, config, only_first=not config.all_routes, memo=memo)
        if len(methods) > 1 and usable_workers(config.workers) > 1:
            runs = run_side_by_side(methods, routes, work, config, on_run, memo)
        else:
            runs = {
                m: run_method(m, make_pruner(m, config), routes, work, config, memo=memo)
                for m in methods
            }
    runs = {m: in_data_units(m, run) for m, run in runs.items()}
    reused = memo.hits
    if reused:
        log.info(
            "work shared between the methods: %s",
            ", ".join(f"{n} {kind}" for kind, n in sorted(reused.items())),
        )
    report = runs["emp"].summary()
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
            # The KAN (and its checkpoint) works on input i divided by inputs[i] and predicts
            # the label divided by label; formulas and errors are in the data's units.
            "rows": {
                "train": int(problem.dataset["train_input"].shape[0]),
                "trained_on": int(work.dataset["train_input"].shape[0]),
                "test": int(problem.dataset["test_input"].shape[0]),
            },
            "scales": {
                "inputs": dict(zip(problem.variables, scales.inputs, strict=True)),
                "label": scales.label,
            },
            "baseline": runs["threshold"].summary() if "threshold" in runs else None,
            "operon": run_operon(problem, config.seed, config.validation_fraction).summary()
            if config.operon
            else None,
        }
    )
    return report, runs
