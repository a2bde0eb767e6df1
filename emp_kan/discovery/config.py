"""Every setting of a discovery run, declared once: its name, default, constraint and help.

:class:`DiscoverConfig`'s fields are the source. The ``emp-kan discover`` and ``bench`` options
(:mod:`emp_kan.app.cli`), the estimators' keyword-only ``__init__``
(:mod:`emp_kan.estimators`) and :class:`emp_kan.app.bench.BenchSettings` are derived from
them; :meth:`DiscoverConfig.check` is the one validator, run at every entry before any work.

Reading this table imports no torch, sympy or pykan, so ``emp-kan --help`` answers at once (a
test in tests/test_cli.py holds it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from emp_kan._runtime.checks import Check, Flag, Interval, Names, Options, Widths
from emp_kan.core import BETA
from emp_kan.kan.score_names import EDGE_SCORES, NODE_SCORES
from emp_kan.pruning.schedule import (
    DEFAULT_ROUND_STEPS,
    DEFAULT_ROUNDS,
    DEFAULT_SCHEDULE,
    Schedule,
)
from emp_kan.pruning.targets import SCOPES, TARGETS
from emp_kan.symbolic.choice import MODEL_SELECTIONS
from emp_kan.symbolic.library import DEFAULT_LIBRARY

__all__ = [
    "CANDIDATE_FAMILIES",
    "ROUTES",
    "DiscoverConfig",
    "Setting",
    "checked_settings",
    "settings_for",
]

#: What the ``candidates`` setting may ask for: every family, or the pruned KAN's alone.
CANDIDATE_FAMILIES = ("all", "kan")

#: What the ``route`` setting may ask for (see :func:`emp_kan.discovery.routes.plan_routes`).
ROUTES = ("auto", "none", "log", "log-y")


@dataclass(frozen=True)
class Setting:
    """How one setting is offered: its help (one phrase), its constraint, and where it appears.

    ``uses`` names the entry points that take it: ``"cli"`` (``emp-kan discover``),
    ``"estimator"`` (the estimators' keywords) and ``"bench"`` (a bench task's budget, also an
    ``emp-kan bench`` option). ``cli_default`` is the command line's default where it differs
    from the library's (progress bars are on at a terminal, off in a library call).
    """

    help: str
    check: Check
    uses: frozenset[str] = frozenset({"cli", "estimator"})
    metavar: str | None = None
    cli_default: Any = None  # None: the library's default


def _setting(
    default: Any,
    help: str,
    check: Check,
    uses: tuple[str, ...] = ("cli", "estimator"),
    **options: Any,
) -> Any:
    setting = Setting(help, check, frozenset(uses), **options)
    return field(default=default, metadata={"setting": setting})


_ALL = ("cli", "estimator", "bench")


@dataclass
class DiscoverConfig:
    """Settings of one discovery run (each field's help is in ``settings_for``; the CLI
    reference in docs/cli.md lists them all)."""

    hidden: tuple[int, ...] = _setting(
        (5,),
        "hidden layer widths: (5,) makes an [n_inputs, 5, 1] KAN",
        Widths(),
        _ALL,
        metavar="W1,W2,...",
    )
    grid: int = _setting(5, "spline grid intervals", Interval(int, 1), _ALL)
    k: int = _setting(3, "spline order", Interval(int, 1))
    steps: int = _setting(
        50,
        "LBFGS steps of the initial training and of the final unregularised polish",
        Interval(int, 0),
        _ALL,
    )
    round_steps: int = _setting(
        DEFAULT_ROUND_STEPS,
        "LBFGS steps retraining after each pruning attempt",
        Interval(int, 0),
        _ALL,
    )
    rounds: int = _setting(
        DEFAULT_ROUNDS,
        "at most this many accepted pruning rounds; the loop stops earlier at a fixed point",
        Interval(int, 0),
        _ALL,
    )
    lamb: float = _setting(
        1e-3, "pykan's sparsity regularisation while training", Interval(float, 0), _ALL
    )
    early_stopping: bool = _setting(
        False,
        "end every training at its step with the lowest loss on the validation rows "
        "(early stopping) instead of its last",
        Flag(),
        _ALL,
    )
    capacity: int = _setting(
        3,
        "when the data route's trained KAN has a validation RMSE above 5 x floor x the std of "
        "the labels, "
        "try up to this many larger KANs in turn (hidden layers twice as wide, one more "
        "layer, a grid twice as fine) and keep one only when it cuts that error by a fifth; "
        "0: never",
        Interval(int, 0),
        _ALL,
    )
    tol: float = _setting(
        DEFAULT_SCHEDULE.tol,
        "accept a pruned model when its validation RMSE is at most "
        "(1 + tol) x the unpruned model's (or below the floor)",
        Interval(float, 0),
        _ALL,
    )
    floor: float = _setting(
        DEFAULT_SCHEDULE.floor,
        "accept a pruned model in any case when its validation RMSE "
        "is at most floor x the std of the labels",
        Interval(float, 0),
        _ALL,
    )
    validation_fraction: float = _setting(
        DEFAULT_SCHEDULE.validation_fraction,
        "share of the training rows held out to take "
        "every decision (accepting a round, choosing a formula); they are not trained on",
        Interval(float, 0, 1, closed="neither"),
    )
    beta: float = _setting(
        1.0,
        "EMP's scale on N_eff; a rejected round retries with beta x 1.5",
        BETA,
    )
    prune: str = _setting("both", "what EMP prunes", Options(TARGETS))
    scope: str = _setting("layer", "EMP ranks per layer or across layers", Options(SCOPES))
    edge_score: str = _setting(
        "attribution", "edge importance both pruners rank by", Options(EDGE_SCORES)
    )
    node_score: str = _setting(
        "attribution", "node importance both pruners rank by", Options(NODE_SCORES)
    )
    library: tuple[str, ...] = _setting(
        DEFAULT_LIBRARY,
        "functions of the symbolic stage (registered names)",
        Names(),
        metavar="F1,F2,...",
    )
    route: str = _setting(
        "auto",
        "auto: also fit log|y| over log|x| (products and powers become sums) and "
        "log|y| over x (exp(f(x)) becomes f(x)) where the data allow it, and keep the formula "
        "the validation rows prefer; log or log-y: only that route; none: the data as given",
        Options(ROUTES),
        _ALL,
    )
    all_routes: bool = _setting(
        False,
        "run every route even after one gave a formula at the noise floor on the "
        "validation rows (by default the later routes, which could only tie, are skipped and "
        "named in the report)",
        Flag(),
        _ALL,
    )
    model_selection: str = _setting(
        "best",
        "how one formula is chosen among the candidates on the validation rows: best "
        "(PySR's rule: the steepest drop of log error per unit of complexity, among those "
        "within 1.5x of the most accurate) or accuracy (the most accurate; of equally "
        "accurate ones the simplest)",
        Options(MODEL_SELECTIONS),
    )
    candidates: str = _setting(
        "all",
        "which candidate formulas compete: all, or kan (only those read from the pruned KAN: "
        "its edges' formula, its additive structure's sparse sums, the log route's power "
        "law and a function of the monomial group its gradients vary along; no product "
        "search, polynomial or direct fit on the data), to measure what the KAN itself "
        "contributes",
        Options(CANDIDATE_FAMILIES),
        ("cli", "estimator", "bench"),
    )
    max_rows: int = _setting(
        5000,
        "at most this many training rows (drawn with the seed) train the KAN, prune it and "
        "fit its formulas; every formula is then measured again, and its constants snapped, "
        "on all validation rows, and the test figures use all test rows",
        Interval(int, 10),
        metavar="N",
    )
    seed: int = _setting(0, "seed of data, model and training", Interval(int, 0))
    noise: float = _setting(
        0.0,
        "Gaussian noise of this share of the label std added to the training labels "
        "(seeded; test labels stay clean)",
        Interval(float, 0),
        ("cli",),  # the bench takes a list of levels (emp_kan.app.bench.parse_levels)
        metavar="SIGMA",
    )
    progress: bool = _setting(False, "show progress bars", Flag(), cli_default=True)
    workers: int = _setting(
        2,
        "processes that run EMP and the threshold baseline side by side, at most one per "
        "CPU; 1 runs them one after the other (the same results either way)",
        Interval(int, 1),
        ("cli",),
        metavar="N",
    )
    # The baselines beside EMP: the CLI sets both through its --compare list.
    compare: bool = _setting(
        True, "also prune with pykan's thresholds, from the same trained model", Flag(), ()
    )
    operon: bool = _setting(
        False, "also run pyoperon's genetic programming on the same rows", Flag(), ()
    )

    def check(self) -> DiscoverConfig:
        """Raise ValueError naming the first setting that cannot work, before any training;
        returns the settings in their canonical types (tuples, ints, floats)."""
        checked = checked_settings(self, settings_for())
        # The registry and pyoperon are imported only here: reading the table stays light.
        from emp_kan.symbolic.edge_fit import check_library

        check_library(checked["library"])
        if checked["operon"]:
            from emp_kan.baselines.operon import require_operon

            require_operon()
        return replace(self, **checked)

    def schedule(self) -> Schedule:
        """The round loop's accept rule and back-off ladder for these settings."""
        return replace(
            DEFAULT_SCHEDULE,
            tol=self.tol,
            floor=self.floor,
            validation_fraction=self.validation_fraction,
        )

    def model_width(self, n_inputs: int) -> list[int]:
        """The KAN's layer widths for ``n_inputs`` inputs: ``[n_inputs, *hidden, 1]``."""
        return [n_inputs, *self.hidden, 1]


def settings_for(use: str | None = None) -> dict[str, tuple[Any, Setting]]:
    """The settings an entry point takes (``"cli"``, ``"estimator"`` or ``"bench"``; None:
    every one), in declaration order: ``{name: (default, Setting)}``."""
    return {
        f.name: (f.default, f.metadata["setting"])
        for f in fields(DiscoverConfig)
        if use is None or use in f.metadata["setting"].uses
    }


def checked_settings(owner: Any, table: Mapping[str, tuple[Any, Setting]]) -> dict[str, Any]:
    """``owner``'s attribute of every setting in ``table``, checked against its constraint
    and in its canonical type; ValueError names the first that cannot work."""
    return {
        name: setting.check.check(name, getattr(owner, name))
        for name, (_, setting) in table.items()
    }
