"""The estimators' inputs, checked the scikit-learn way (``validate_data``): the messages and
fitted attributes (``n_features_in_``, ``feature_names_in_`` for a DataFrame) users and
``sklearn.utils.estimator_checks`` expect, plus the formula's variable names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from emp_kan.data.formula_parse import CONSTANTS, FUNCTIONS
from emp_kan.data.tables import variable_name

__all__ = ["MIN_ROWS", "checked_fit_data", "checked_rows", "formula_variables"]

MIN_ROWS = 10  # fewer leave no validation rows to decide on


def checked_fit_data(
    estimator: Any, X: Any, y: Any, classifier: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``X (n_samples, n_features)`` as float64 and ``y (n_samples,)`` (numbers for a regressor,
    class labels for a classifier), or ValueError/TypeError naming the problem; sets
    ``n_features_in_`` (and ``feature_names_in_`` for a DataFrame) on ``estimator``."""
    X, y = validate_data(
        estimator,
        X,
        y,
        dtype=np.float64,
        ensure_min_samples=MIN_ROWS,
        y_numeric=not classifier,
    )
    if classifier:
        check_classification_targets(y)
    return X, y


def checked_rows(estimator: Any, X: Any) -> np.ndarray:
    """``X`` for a fitted ``estimator``: float64 ``(n_samples, n_features_in_)``, or
    NotFittedError/ValueError naming the problem."""
    check_is_fitted(estimator, "model_")
    return validate_data(estimator, X, dtype=np.float64, reset=False)


def formula_variables(estimator: Any, names: Sequence[str] | None) -> list[str]:
    """The formula's variable names: ``names`` if given (checked), else the DataFrame's
    columns made variables (:func:`emp_kan.data.tables.variable_name`), else ``x0, x1, ...``."""
    n_features = estimator.n_features_in_
    if names is None:
        columns = getattr(estimator, "feature_names_in_", None)
        if columns is None:
            return [f"x{i}" for i in range(n_features)]
        taken: list[str] = []  # a DataFrame's columns as formula variables (P (bar) -> P_bar)
        for column in columns:
            taken.append(variable_name(str(column), set(taken)))
        return taken
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
