"""``EMPKANRegressor``: the whole pipeline as a scikit-learn estimator.

``fit(X, y)`` trains a pykan KAN, prunes it with EMP between training rounds and turns the
surviving splines into a formula; ``predict`` uses the pruned KAN (or the formula with
``predict(X, use_formula=True)``). Keyword hyperparameters are stored as given; fitted state
ends in ``_``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from emp_kan._runtime.checks import Flag, NameMap, Options
from emp_kan.data.problems import Problem, with_units
from emp_kan.data.scaling import Scales
from emp_kan.data.split import Split
from emp_kan.discovery.config import DiscoverConfig, Setting
from emp_kan.discovery.discover import method_runs
from emp_kan.discovery.summary import constants_in_units
from emp_kan.draw.graph import to_networkx
from emp_kan.draw.plotting import plot_graph
from emp_kan.estimators.equations import constants_frame, equations_frame
from emp_kan.estimators.inputs import checked_fit_data, checked_rows, formula_variables
from emp_kan.estimators.params import (
    checked_params,
    estimator_params,
    keyword_init,
    parameters_doc,
)
from emp_kan.estimators.saving import (
    load_estimator,
    picklable_state,
    restored_state,
    save_estimator,
)
from emp_kan.kan import adapter

__all__ = ["EMPKANRegressor"]

_PARAMS = estimator_params(
    extra={
        "method": (
            "emp",
            Setting(
                "the pruner: EMP, or pykan's fixed thresholds in the same round "
                "loop (for comparison)",
                Options(("emp", "threshold")),
            ),
        ),
        "symbolic": (
            True,
            Setting(
                "run the symbolic stage in fit (without it, the pruned KAN of "
                "the data as given is kept and formula_ is None)",
                Flag(),
            ),
        ),
        "units": (
            None,
            Setting(
                "the units of the features (by name) and of the label (as 'y'), as pint "
                "reads them, e.g. {'m1': 'kg', 'r': 'm', 'y': 'N'}: the KAN then learns the "
                "law between dimensionless groups (groups_), and constants_ gives each "
                "constant's units",
                NameMap("{'m1': 'kg', 'r': 'm', 'y': 'N'}"),
            ),
        ),
    }
)


class EMPKANRegressor(RegressorMixin, BaseEstimator):
    """A KAN pruned with EMP, with the formula it holds.

    {parameters}

    Attributes
    ----------
    formula_ : SymbolicFormula or None
        The formula (``formula_.expression`` is sympy; also :meth:`sympy`, :meth:`latex`), its
        test metrics on the validation rows and per-edge fits; None with ``symbolic=False``.
    equations_ : pandas.DataFrame or None
        Every candidate formula the fit compared, one row each, in the order compared:
        ``candidate`` and ``route`` (where it came from), ``equation`` (text),
        ``sympy_format``, ``complexity``, ``val_rmse`` (on the validation rows), ``edges``
        (of the pruned KAN it was read from) and ``chosen`` (True on the one row that is
        ``formula_``, picked by ``model_selection``); None with ``symbolic=False``.
    constants_ : pandas.DataFrame
        The formula's fitted (not snapped) constants, largest first: ``value`` and
        ``std_error`` (from a least-squares refit on the fit rows, the Jacobian scaled by the
        residual variance; NaN where the rows do not determine it).
    noise_estimate_ : dict or None
        How noisy the labels look (``neighbours``, ``network``, ``best_formula``) and the
        validation RMSE below which candidates tied in the choice (``ties_below``); see
        docs/report.md. None with ``symbolic=False``.
    model_ : kan.MultKAN
        The pruned KAN (in log space when ``transform_`` is set).
    result_ : PruneResult
        The round loop's result: ``history``, ``node_ids``, ``stop_reason``, losses.
    history_ : list of RoundRecord
        Every pruning attempt, accepted or not (``result_.history``).
    scales_ : Scales
        The powers of ten the KAN's inputs and label were divided by (1.0: as given); the
        formula and every error are in the data's own units.
    groups_ : Groups or None
        With ``units``, the dimensionless groups the KAN learned the law between
        (``groups_.describe()``: each group's formula and the label the KAN learned); None
        when the units left nothing to reduce or the inputs as given gave the better formula.
    transform_ : LogTransform or None
        Set when the chosen formula came from the log route: ``predict`` maps the KAN's
        ``log|y|`` back through it.
    variable_names_ : list of str
        The formula's variable names: ``fit``'s ``variable_names``, else the DataFrame's
        columns, else ``x0, x1, ...``.
    feature_names_in_ : ndarray of str
        The DataFrame's columns (only when fitted on a DataFrame, as in scikit-learn).
    n_features_in_ : int

    Notes
    -----
    Save with :meth:`save` and :meth:`load` (a file that loads without running code).
    A fitted estimator can also be saved with ``pickle`` or ``joblib``; its pykan model travels as a
    plain description (:func:`emp_kan.kan.adapter.model_state`) and is rebuilt on loading.

    Examples
    --------
    >>> import numpy as np
    >>> from emp_kan import EMPKANRegressor
    >>> X = np.random.default_rng(0).uniform(-1, 1, size=(200, 2))
    >>> y = np.exp(X[:, 0]) + X[:, 1] ** 2
    >>> est = EMPKANRegressor(hidden=(3,), steps=40, rounds=2).fit(X, y)
    >>> est.sympy()  # doctest: +SKIP
    x1**2 + exp(x0)
    >>> est.score(X, y) > 0.999
    True
    >>> int(est.equations_["chosen"].sum())  # one candidate of the front is the formula
    1
    >>> est.predict(X[:3]).shape
    (3,)
    """

    __init__ = keyword_init(_PARAMS)

    # --- the estimator API ------------------------------------------------------------------

    def fit(self, X: Any, y: Any, variable_names: Sequence[str] | None = None) -> EMPKANRegressor:
        """Train, prune with EMP and (with ``symbolic=True``) find the formula.

        Parameters
        ----------
        X : array_like or DataFrame, ``(n_samples, n_features)``
            DataFrame column names become the formula's variable names.
        y : array_like, ``(n_samples,)``
        variable_names : sequence of str, optional
            Names of the features in the formula (default: the DataFrame's columns, else
            ``x0, x1, ...``): identifiers, distinct, not a function or constant name.
        """
        params = checked_params(self, _PARAMS)  # bad settings fail before any work
        X, y = checked_fit_data(self, X, y)
        names = formula_variables(self, variable_names)
        method, symbolic = params.pop("method"), params.pop("symbolic")
        units = params.pop("units")
        # scikit-learn's way: parallel only where the caller asks (n_jobs), so one process.
        config = DiscoverConfig(**params, compare=False, workers=1).check()
        # Shuffled rows; the round loop and the symbolic stage decide on the last
        # validation_fraction of them. With no test rows of its own, the estimator reports
        # those validation rows in the loop's "test" columns.
        order = np.random.default_rng(self.seed).permutation(X.shape[0])
        X, y = X[order], y[order]
        rows = Split.of_training_rows(
            torch.tensor(X, dtype=torch.float64),
            torch.tensor(y[:, None], dtype=torch.float64),
            config.validation_fraction,
        )
        # The KAN trains on columns near 1 (see emp_kan.data.scaling), and with units on
        # dimensionless groups (emp_kan.data.groups); the formula is mapped back to the data.
        given = Problem("estimator", rows.dataset, names, None, None)
        if units is not None:
            if "y" in names:
                raise ValueError("a feature is named y, the label's name in units; rename it")
            given = with_units(given, units)
        runs, views = method_runs(given, (method,), config, symbolic=symbolic)
        run, view = runs[method], views[method]
        self.scales_ = view.scales
        self.groups_ = view.groups
        constants = run.constants
        if run.formula is not None:
            constants = constants_in_units(constants, run.formula.expression, given)
        self.constants_ = constants_frame(constants)
        self.result_ = run.pruned
        self.model_ = self.result_.model
        self.history_ = self.result_.history
        self.variable_names_ = names
        self.formula_ = run.formula
        self.equations_ = (
            None
            if run.formula is None
            else equations_frame(run.front, [f.expression for f in run.front_formulas])
        )
        self.transform_ = run.log_transform
        self.noise_estimate_ = run.noise_estimate
        return self

    # pykan models hold lambdas that pickle cannot store: they travel as model_state dicts.
    def __getstate__(self) -> dict:
        return picklable_state(self.__dict__, ("model_",))

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(restored_state(state, ("model_",)))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to one file (replaced if it exists); returns its path.

        The file holds tensors, numbers and text only: :meth:`load` reads it without running
        code from it, unlike a pickle. ``pickle`` and ``joblib`` work as well.
        """

        return save_estimator(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EMPKANRegressor:
        """The estimator :meth:`save` wrote to ``path``; it predicts as it did when saved."""

        return load_estimator(path, cls)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "model_")

    def predict(self, X: Any, use_formula: bool = False) -> np.ndarray:
        """Predictions ``(n_samples,)`` of the pruned KAN, or of the formula."""
        X = checked_rows(self, X)
        if use_formula:
            if self.formula_ is None:
                raise ValueError("no formula: fit with symbolic=True first")
            return self.formula_.lambdify()(X)

        groups = getattr(self, "groups_", None)
        normaliser = 1.0 if groups is None else groups.normaliser_of(X)
        X = X if groups is None else groups.of_inputs(X)
        scales = getattr(self, "scales_", None) or Scales((1.0,) * X.shape[1], 1.0)
        x = torch.tensor(X, dtype=torch.float64) / torch.tensor(scales.inputs, dtype=torch.float64)
        transform = getattr(self, "transform_", None)
        with torch.no_grad():
            if transform is None:
                out = adapter.forward_float64(self.model_, x)
            else:
                route_x = transform.apply({"x": x})["x"]  # log|x| on the log route only
                out = transform.to_label(adapter.forward_float64(self.model_, route_x), x)
        return out.numpy()[:, 0] * scales.label * normaliser

    def sympy(self):
        """The formula as a sympy expression."""
        self._check_fitted()
        if self.formula_ is None:
            raise ValueError("no formula: fit with symbolic=True first")
        return self.formula_.expression

    def latex(self) -> str:
        """The formula in LaTeX."""
        self.sympy()  # raises the same errors when there is no formula
        return self.formula_.latex()

    def to_networkx(self, X: Any = None):
        """The pruned KAN as a graph (see :func:`emp_kan.to_networkx`)."""
        self._check_fitted()

        scales = getattr(self, "scales_", None)
        x = None
        if X is not None:
            x = torch.tensor(checked_rows(self, X), dtype=torch.float64)
            if scales is not None:  # the KAN works on the scaled columns
                x = x / torch.tensor(scales.inputs, dtype=torch.float64)
            x = x.float()
        symbolic = self.formula_.graph_attributes() if self.formula_ is not None else None
        return to_networkx(self.result_, x, variables=list(self.variable_names_), symbolic=symbolic)

    def plot(self, ax=None, X: Any = None):
        """Draw the pruned KAN; returns the Axes."""

        return plot_graph(self.to_networkx(X), ax=ax)


EMPKANRegressor.__doc__ = EMPKANRegressor.__doc__.replace(
    "    {parameters}", parameters_doc(_PARAMS)
)
