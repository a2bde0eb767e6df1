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

from emp_kan._runtime.checks import Flag, Options
from emp_kan.discovery.config import DiscoverConfig, Setting
from emp_kan.estimators.params import (
    checked_params,
    estimator_params,
    keyword_init,
    parameters_doc,
)

__all__ = ["EMPKANRegressor", "check_features"]

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
    }
)


def _check_variable_names(names: Sequence[str], n_features: int) -> list[str]:
    """``names`` as a list, or ValueError saying what is wrong with them."""
    from emp_kan.data.formula_parse import CONSTANTS, FUNCTIONS

    if isinstance(names, str):
        raise ValueError("variable_names must be a list of names, e.g. ['mass', 'speed']")
    names = [str(n) for n in names]
    if len(names) != n_features:
        raise ValueError(f"variable_names has {len(names)} names for {n_features} features")
    bad = [
        n
        for n in names
        if not n.isidentifier() or n.startswith("_") or n in FUNCTIONS or n in CONSTANTS
    ]
    if bad:
        shown = ", ".join(map(repr, bad))
        raise ValueError(
            f"variable names must be identifiers that are not a function or "
            f"constant name (pi, E, sin, ...): {shown}"
        )
    if len(set(names)) != len(names):
        raise ValueError("variable_names must be distinct")
    return names


def check_features(X: Any, n_features: int | None = None) -> tuple[np.ndarray, list[str]]:
    """``X`` as a float array ``(n_samples, n_features)`` and its column names (a DataFrame's,
    else ``x0, x1, ...``), or ValueError saying what is wrong.

    With ``n_features`` (a fitted estimator's), the column count must match; without it (when
    fitting) at least 10 rows are needed.
    """
    names = None
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):
        names = [str(c) for c in X.columns]
        X = X.to_numpy()
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("X must be numeric (an array or a DataFrame of numbers)") from None
    if X.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), got shape {X.shape}; "
            "reshape a single feature with X.reshape(-1, 1)"
        )
    bad = int((~np.isfinite(X)).sum())
    if bad:
        raise ValueError(f"X has {bad} NaN or infinite entries; drop or impute them first")
    if n_features is None and X.shape[0] < 10:
        raise ValueError(f"X has {X.shape[0]} rows; at least 10 are needed")
    if names is None:
        names = [f"x{i}" for i in range(X.shape[1])]
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {n_features}")
    return X, names


class EMPKANRegressor(RegressorMixin, BaseEstimator):
    """A KAN pruned with EMP, with the formula it holds.

    {parameters}

    Attributes
    ----------
    formula_ : SymbolicFormula or None
        The formula (``formula_.expression`` is sympy; also :meth:`sympy`, :meth:`latex`), its
        test metrics on the validation rows and per-edge fits; None with ``symbolic=False``.
    model_ : kan.MultKAN
        The pruned KAN (in log space when ``transform_`` is set).
    result_ : PruneResult
        The round loop's result: ``history``, ``node_ids``, ``stop_reason``, losses.
    history_ : list of RoundRecord
        Every pruning attempt, accepted or not (``result_.history``).
    transform_ : LogTransform or None
        Set when the chosen formula came from the log route: ``predict`` maps the KAN's
        ``log|y|`` back through it.
    feature_names_in_ : ndarray of str
    n_features_in_ : int

    Notes
    -----
    Save with :meth:`save` and :meth:`load` (a file that loads without running code).
    A fitted estimator can also be saved with ``pickle`` or ``joblib``; its pykan model travels as a
    plain description (:func:`emp_kan.kan.adapter.model_state`) and is rebuilt on loading.
    """

    __init__ = keyword_init(_PARAMS)

    # --- input handling ---------------------------------------------------------------------

    def _check_X(self, X: Any, fitting: bool) -> tuple[np.ndarray, list[str]]:
        return check_features(X, None if fitting else self.n_features_in_)

    def _check_y(self, y: Any, n: int) -> np.ndarray:
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"y must have one value per row of X ({n}), got shape {y.shape}")
        bad = int((~np.isfinite(y)).sum())
        if bad:
            raise ValueError(f"y has {bad} NaN or infinite entries; drop them first")
        return y

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
        from emp_kan.data.problems import Problem
        from emp_kan.discovery.parallel import train_routes
        from emp_kan.discovery.run import make_pruner, run_method

        params = checked_params(self, _PARAMS)  # bad settings fail before any work
        X, names = self._check_X(X, fitting=True)
        if variable_names is not None:
            names = _check_variable_names(variable_names, X.shape[1])
        y = self._check_y(y, X.shape[0])
        method, symbolic = params.pop("method"), params.pop("symbolic")
        # scikit-learn's way: parallel only where the caller asks (n_jobs), so one process.
        config = DiscoverConfig(**params, compare=False, workers=1).check()
        pruner = make_pruner(method, config)
        # Shuffled rows; the round loop and the symbolic stage decide on the last
        # validation_fraction of them. With no test rows of its own, the estimator reports
        # those validation rows in the loop's "test" columns.
        order = np.random.default_rng(self.seed).permutation(X.shape[0])
        X, y = X[order], y[order]
        n_val = max(1, int(X.shape[0] * config.validation_fraction + 1e-9))

        def t(a):
            return torch.tensor(a, dtype=torch.float32)

        data = {
            "train_input": t(X),
            "train_label": t(y[:, None]),
            "test_input": t(X[-n_val:]),
            "test_label": t(y[-n_val:, None]),
        }
        problem = Problem("estimator", data, names, None, None)
        routes = train_routes(problem, config, only_first=not config.all_routes, symbolic=symbolic)
        run = run_method(method, pruner, routes, problem, config, symbolic=symbolic)
        self.result_ = run.pruned
        self.model_ = self.result_.model
        self.history_ = self.result_.history
        self.feature_names_in_ = np.array(names, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.formula_ = run.formula
        self.transform_ = run.log_transform
        return self

    # pykan models hold lambdas that pickle cannot store: they travel as model_state dicts.
    def __getstate__(self) -> dict:
        from emp_kan.estimators.saving import picklable_state

        return picklable_state(self.__dict__, ("model_",))

    def __setstate__(self, state: dict) -> None:
        from emp_kan.estimators.saving import restored_state

        self.__dict__.update(restored_state(state, ("model_",)))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to one file (replaced if it exists); returns its path.

        The file holds tensors, numbers and text only: :meth:`load` reads it without running
        code from it, unlike a pickle. ``pickle`` and ``joblib`` work as well.
        """
        from emp_kan.estimators.saving import save_estimator

        return save_estimator(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EMPKANRegressor:
        """The estimator :meth:`save` wrote to ``path``; it predicts as it did when saved."""
        from emp_kan.estimators.saving import load_estimator

        return load_estimator(path, cls)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this EMPKANRegressor is not fitted yet; call fit(X, y) first")

    def predict(self, X: Any, use_formula: bool = False) -> np.ndarray:
        """Predictions ``(n_samples,)`` of the pruned KAN, or of the formula."""
        self._check_fitted()
        X, _ = self._check_X(X, fitting=False)
        if use_formula:
            if self.formula_ is None:
                raise ValueError("no formula: fit with symbolic=True first")
            return self.formula_.lambdify()(X)
        from emp_kan.kan import adapter

        x = torch.tensor(X, dtype=torch.float32)
        transform = getattr(self, "transform_", None)
        with torch.no_grad():
            if transform is None:
                out = adapter.forward_pass(self.model_, x)
            else:
                route_x = transform.apply({"x": x})["x"]  # log|x| on the log route only
                out = transform.to_label(adapter.forward_pass(self.model_, route_x), x)
        return out.numpy()[:, 0].astype(np.float64)

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
        from emp_kan.draw.graph import to_networkx

        x = (
            None
            if X is None
            else torch.tensor(self._check_X(X, fitting=False)[0], dtype=torch.float32)
        )
        symbolic = self.formula_.graph_attributes() if self.formula_ is not None else None
        return to_networkx(
            self.result_, x, variables=list(self.feature_names_in_), symbolic=symbolic
        )

    def plot(self, ax=None, X: Any = None):
        """Draw the pruned KAN; returns the Axes."""
        from emp_kan.draw.plotting import plot_graph

        return plot_graph(self.to_networkx(X), ax=ax)


EMPKANRegressor.__doc__ = EMPKANRegressor.__doc__.replace(
    "    {parameters}", parameters_doc(_PARAMS)
)
