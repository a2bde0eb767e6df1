"""``EMPKANRegressor``: the whole pipeline as a scikit-learn estimator.

``fit(X, y)`` trains a pykan KAN, prunes it with EMP between training rounds and turns the
surviving splines into a formula; ``predict`` uses the pruned KAN (or the formula with
``predict(X, use_formula=True)``). Keyword hyperparameters are stored as given; fitted state
ends in ``_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin

from emp_kan.symbolic.edge_fit import DEFAULT_LIBRARY

__all__ = ["EMPKANRegressor"]


class EMPKANRegressor(RegressorMixin, BaseEstimator):
    """A KAN pruned with EMP, with the formula it holds.

    Parameters
    ----------
    width : sequence of int, optional
        Hidden layer widths (inputs and the output are added), default ``(5,)``.
    grid, k : int
        Spline grid intervals and order.
    steps : int
        LBFGS steps of the initial training and of the final unregularised polish.
    round_steps : int
        LBFGS steps retraining after each pruning round.
    rounds : int
        Pruning rounds at most.
    lamb : float
        pykan's sparsity regularisation.
    beta : float
        EMP's scale on N_eff.
    prune : {"edges", "nodes", "both"}
    scope : {"layer", "global"}
    tol : float
        Rollback tolerance of a round's test RMSE (see :func:`emp_kan.prune_rounds`).
    library : sequence of str
        Functions for the symbolic stage.
    symbolic : bool
        Run the symbolic stage in ``fit``.
    validation_fraction : float
        Share of the rows held out as the loop's "test" split (rollback and reports).
    seed : int
    """

    def __init__(
        self,
        width: Sequence[int] | None = None,
        grid: int = 5,
        k: int = 3,
        steps: int = 50,
        round_steps: int = 20,
        rounds: int = 3,
        lamb: float = 1e-3,
        beta: float = 1.0,
        prune: str = "both",
        scope: str = "layer",
        tol: float = 0.5,
        library: Sequence[str] = DEFAULT_LIBRARY,
        symbolic: bool = True,
        validation_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.width = width
        self.grid = grid
        self.k = k
        self.steps = steps
        self.round_steps = round_steps
        self.rounds = rounds
        self.lamb = lamb
        self.beta = beta
        self.prune = prune
        self.scope = scope
        self.tol = tol
        self.library = library
        self.symbolic = symbolic
        self.validation_fraction = validation_fraction
        self.seed = seed

    # --- input handling ---------------------------------------------------------------------

    def _check_X(self, X: Any, fitting: bool) -> tuple[np.ndarray, list[str]]:
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
        if fitting and X.shape[0] < 10:
            raise ValueError(f"X has {X.shape[0]} rows; at least 10 are needed")
        if names is None:
            names = [f"x{i}" for i in range(X.shape[1])]
        if not fitting and X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted on "
                             f"{self.n_features_in_}")  # fmt: skip
        return X, names

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

    def fit(self, X: Any, y: Any) -> EMPKANRegressor:
        """Train, prune with EMP and (with ``symbolic=True``) find the formula.

        Parameters
        ----------
        X : array_like or DataFrame, ``(n_samples, n_features)``
            DataFrame column names become the formula's variable names.
        y : array_like, ``(n_samples,)``
        """
        from emp_kan.kan import adapter
        from emp_kan.pruning.pruners import EMPPruner
        from emp_kan.pruning.rounds import prune_rounds, train
        from emp_kan.symbolic.search import fit_formula

        X, names = self._check_X(X, fitting=True)
        y = self._check_y(y, X.shape[0])
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must lie strictly between 0 and 1")
        pruner = EMPPruner(target=self.prune, scope=self.scope, beta=self.beta)
        order = np.random.default_rng(self.seed).permutation(X.shape[0])
        n_val = max(1, int(round(self.validation_fraction * X.shape[0])))
        val, tr = order[:n_val], order[n_val:]

        def t(a):
            return torch.tensor(a, dtype=torch.float32)

        data = {"train_input": t(X[tr]), "train_label": t(y[tr, None]),
                "test_input": t(X[val]), "test_label": t(y[val, None])}  # fmt: skip
        hidden = list(self.width) if self.width is not None else [5]
        model = adapter.make_kan([X.shape[1], *hidden, 1], grid=self.grid, k=self.k,
                                 seed=self.seed)  # fmt: skip
        trained = train(model, data, steps=self.steps, lamb=self.lamb, seed=self.seed)
        self.result_ = prune_rounds(trained, data, pruner, rounds=self.rounds,
                                    steps=self.round_steps, lamb=self.lamb, tol=self.tol,
                                    initial_steps=0, final_steps=self.steps,
                                    seed=self.seed)  # fmt: skip
        self.model_ = self.result_.model
        self.history_ = self.result_.history
        self.feature_names_in_ = np.array(names, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.formula_ = None
        if self.symbolic:
            self.formula_ = fit_formula(self.result_, data, variables=names,
                                        library=self.library, seed=self.seed)  # fmt: skip
        return self

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

        with torch.no_grad():
            out = adapter.forward_pass(self.model_, torch.tensor(X, dtype=torch.float32))
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

        x = None if X is None else torch.tensor(self._check_X(X, fitting=False)[0],
                                                dtype=torch.float32)  # fmt: skip
        symbolic = self.formula_.graph_attributes() if self.formula_ is not None else None
        return to_networkx(self.result_, x, variables=list(self.feature_names_in_),
                           symbolic=symbolic)  # fmt: skip

    def plot(self, ax=None, X: Any = None):
        """Draw the pruned KAN; returns the Axes."""
        from emp_kan.draw.plotting import plot_graph

        return plot_graph(self.to_networkx(X), ax=ax)
