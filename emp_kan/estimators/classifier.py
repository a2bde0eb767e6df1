"""``EMPKANClassifier``: a KAN classifier pruned with EMP, the EMP paper's own KAN experiment.

The paper trains a KAN classifier without a sparsity penalty, then prunes each hidden layer's
nodes once with EMP (node score: max(max incoming, max outgoing) of the edges' mean |scaled
spline coefficient|) and reports the accuracy with no fine-tuning. ``prune_schedule="one-shot"``
(the default) does that, with pykan's attribution as the edge score by default (see
``edge_score``); ``"rounds"`` runs this toolkit's round loop instead (pruning
between training rounds, decisions on validation cross-entropy); ``"none"`` keeps the dense model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

__all__ = ["EMPKANClassifier"]

_SCHEDULES = ("one-shot", "rounds", "none")


class EMPKANClassifier(ClassifierMixin, BaseEstimator):
    """A KAN classifier (logits out, cross-entropy loss), pruned with EMP.

    Parameters
    ----------
    width : sequence of int, optional
        Hidden layer widths (inputs and one output per class are added), default ``(64,)``.
    grid, k : int
        Spline grid intervals and order.
    steps : int
        Training steps (full batch).
    opt : {"Adam", "LBFGS"}
    lr : float
        Learning rate (Adam; LBFGS uses it as its step scale).
    lamb : float
        pykan's sparsity penalty; the paper uses none (0).
    method : {"emp", "threshold"}
        EMP, or pykan's node threshold (``node_th``) for comparison.
    beta : float
        EMP's scale on N_eff.
    prune : {"nodes", "edges", "both"}
        What is pruned; the paper prunes hidden nodes.
    prune_schedule : {"one-shot", "rounds", "none"}
        Prune once after training without fine-tuning (the paper), prune between training
        rounds (``rounds`` rounds of ``round_steps`` steps, decided on validation
        cross-entropy), or not at all.
    edge_score, node_score : str
        Default: pykan's attribution edge scores pooled as the paper pools them
        (``"max_in_out"``). The paper's own edge score, ``"coefficient"`` (mean |scaled spline
        coefficient|), ignores pykan's base branch ``scale_base * silu(x)``, which carries much
        of a trained pykan edge: on digits it pruned worse than a random choice of as many
        nodes (benchmarks/bench_digits.py); it stays available by name.
    node_th : float
        The threshold pruner's node threshold (pykan's default 1e-2).
    rounds, round_steps : int
        For ``prune_schedule="rounds"``.
    validation_fraction : float
        Share of the rows held out (not trained on) for the round loop's decisions.
    seed : int

    Attributes
    ----------
    classes_ : ndarray
        The class labels, in the order of the outputs.
    model_ : kan.MultKAN
        The pruned KAN.
    dense_model_ : kan.MultKAN
        The KAN before pruning (same training).
    hidden_kept_ : list of int
        Hidden nodes per hidden layer after pruning.
    decisions_ : list of dict
        One-shot: per pruned layer, ``kind, layer, alive_before, n_eff, kept, preserved_mass,
        mass_bound``.
    result_ : PruneResult or None
        The round loop's result for ``prune_schedule="rounds"``.
    n_features_in_ : int
    """

    def __init__(
        self,
        width: Sequence[int] | None = None,
        grid: int = 5,
        k: int = 3,
        steps: int = 100,
        opt: str = "Adam",
        lr: float = 1e-2,
        lamb: float = 0.0,
        method: str = "emp",
        beta: float = 1.0,
        prune: str = "nodes",
        prune_schedule: str = "one-shot",
        edge_score: str = "attribution",
        node_score: str = "max_in_out",
        node_th: float = 1e-2,
        rounds: int = 3,
        round_steps: int = 20,
        validation_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.width = width
        self.grid = grid
        self.k = k
        self.steps = steps
        self.opt = opt
        self.lr = lr
        self.lamb = lamb
        self.method = method
        self.beta = beta
        self.prune = prune
        self.prune_schedule = prune_schedule
        self.edge_score = edge_score
        self.node_score = node_score
        self.node_th = node_th
        self.rounds = rounds
        self.round_steps = round_steps
        self.validation_fraction = validation_fraction
        self.seed = seed

    def _pruner(self):
        from emp_kan.pruning.pruners import EMPPruner, ThresholdPruner

        if self.method == "emp":
            return EMPPruner(target=self.prune, beta=self.beta, edge_score=self.edge_score,
                             node_score=self.node_score)  # fmt: skip
        if self.method == "threshold":
            return ThresholdPruner(node_th=self.node_th, target=self.prune,
                                   edge_score=self.edge_score,
                                   node_score=self.node_score)  # fmt: skip
        raise ValueError(f"unknown method {self.method!r}; use 'emp' or 'threshold'")

    def _check(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        from emp_kan.estimators.regressor import check_features

        X, _ = check_features(X)
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y must have one label per row of X ({X.shape[0]}), got shape "
                             f"{y.shape}")  # fmt: skip
        if self.prune_schedule not in _SCHEDULES:
            raise ValueError(f"prune_schedule must be one of {', '.join(_SCHEDULES)}, got "
                             f"{self.prune_schedule!r}")  # fmt: skip
        if self.opt not in ("Adam", "LBFGS"):
            raise ValueError(f"opt must be 'Adam' or 'LBFGS', got {self.opt!r}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must lie strictly between 0 and 1")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        return X, y

    def fit(self, X: Any, y: Any) -> EMPKANClassifier:
        """Train on ``X (n_samples, n_features)`` and labels ``y (n_samples,)``, then prune."""
        from emp_kan.kan import adapter
        from emp_kan.pruning.rounds import prune_rounds, prune_step, train

        X, y = self._check(X, y)
        pruner = self._pruner()  # a bad method, beta or score fails before training
        classes, codes = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError("y has one class only; a classifier needs at least two")
        order = np.random.default_rng(self.seed).permutation(X.shape[0])
        X, codes = X[order], codes[order]
        n_val = max(1, int(X.shape[0] * self.validation_fraction + 1e-9))
        x = torch.tensor(X, dtype=torch.float32)
        onehot = torch.nn.functional.one_hot(torch.tensor(codes), classes.size).float()
        fit_rows = {"train_input": x[:-n_val], "train_label": onehot[:-n_val],
                    "test_input": x[-n_val:], "test_label": onehot[-n_val:]}  # fmt: skip
        hidden = list(self.width) if self.width is not None else [64]
        model = adapter.make_kan([X.shape[1], *hidden, classes.size], grid=self.grid, k=self.k,
                                 seed=self.seed)  # fmt: skip
        dense = train(model, fit_rows, steps=self.steps, lamb=self.lamb, seed=self.seed,
                      opt=self.opt, loss="cross_entropy", lr=self.lr)  # fmt: skip
        self.result_ = None
        self.decisions_ = []
        if self.prune_schedule == "one-shot":
            step = prune_step(dense, fit_rows["train_input"], pruner)
            pruned = step.model
            self.decisions_ = [vars(d).copy() for d in step.decisions]
        elif self.prune_schedule == "rounds":
            # The loop carves its own validation rows from the training rows it is given.
            data = {"train_input": x, "train_label": onehot, "test_input": x[-n_val:],
                    "test_label": onehot[-n_val:]}  # fmt: skip
            self.result_ = prune_rounds(dense, data, pruner, rounds=self.rounds,
                                        steps=self.round_steps, lamb=self.lamb, initial_steps=0,
                                        final_steps=0, seed=self.seed, opt=self.opt,
                                        loss="cross_entropy")  # fmt: skip
            pruned = self.result_.model
        else:
            pruned = dense
        self.classes_ = classes
        self.dense_model_ = dense
        self.model_ = pruned
        self.hidden_kept_ = adapter.widths(pruned)[1:-1]
        self.n_features_in_ = X.shape[1]
        return self

    def _logits(self, X: Any, model: Any = None) -> torch.Tensor:
        from emp_kan.estimators.regressor import check_features
        from emp_kan.kan import adapter

        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this EMPKANClassifier is not fitted yet; call fit(X, y) first")
        X, _ = check_features(X, self.n_features_in_)
        with torch.no_grad():
            return adapter.forward_pass(model if model is not None else self.model_,
                                        torch.tensor(X, dtype=torch.float32))  # fmt: skip

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)`` (softmax of the logits)."""
        return torch.softmax(self._logits(X), dim=1).numpy().astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, ``(n_samples,)``."""
        return self.classes_[self._logits(X).argmax(dim=1).numpy()]

    def log_loss(self, X: Any, y: Any, dense: bool = False) -> float:
        """Mean cross-entropy on ``(X, y)`` of the pruned model (or of the dense one)."""
        logits = self._logits(X, self.dense_model_ if dense else None)
        codes = np.searchsorted(self.classes_, np.asarray(y))
        if (codes >= self.classes_.size).any() or (self.classes_[codes] != np.asarray(y)).any():
            raise ValueError("y holds labels the classifier was not fitted on")
        return float(torch.nn.functional.cross_entropy(logits, torch.tensor(codes)))

    def dense_score(self, X: Any, y: Any) -> float:
        """Accuracy of the model before pruning."""
        predicted = self.classes_[self._logits(X, self.dense_model_).argmax(dim=1).numpy()]
        return float(np.mean(predicted == np.asarray(y)))

    # pykan models hold lambdas that pickle cannot store: they travel as model_state dicts.
    def __getstate__(self) -> dict:
        from emp_kan.estimators.saving import picklable_state

        return picklable_state(self.__dict__, ("model_", "dense_model_"))

    def __setstate__(self, state: dict) -> None:
        from emp_kan.estimators.saving import restored_state

        self.__dict__.update(restored_state(state, ("model_", "dense_model_")))
