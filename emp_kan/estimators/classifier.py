"""``EMPKANClassifier``: a KAN classifier pruned with EMP, the EMP paper's own KAN experiment.

The paper trains a KAN classifier without a sparsity penalty, then prunes each hidden layer's
nodes once with EMP (node score: max(max incoming, max outgoing) of the edges' mean |scaled
spline coefficient|) and reports the accuracy with no fine-tuning. ``prune_schedule="one-shot"``
(the default) does that, with pykan's attribution as the edge score by default (see
``edge_score``); ``"rounds"`` runs this toolkit's round loop instead (pruning
between training rounds, decisions on validation cross-entropy); ``"none"`` keeps the dense model.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from emp_kan._runtime.checks import Interval, Options
from emp_kan.data.split import Split
from emp_kan.discovery.config import Setting
from emp_kan.estimators.inputs import checked_fit_data, checked_rows
from emp_kan.estimators.params import (
    checked_params,
    estimator_params,
    keyword_init,
    parameters_doc,
)
from emp_kan.estimators.saving import picklable_state, restored_state
from emp_kan.kan import adapter
from emp_kan.kan.training import train
from emp_kan.pruning.pruners import EMPPruner, ThresholdPruner
from emp_kan.pruning.rounds import prune_rounds
from emp_kan.pruning.step import prune_step

__all__ = ["EMPKANClassifier"]

log = logging.getLogger("emp_kan")

_ONE_SHOT_TRIES = 7  # the pruner as given, then 6 gentler ones

# The discovery settings a classifier takes, with the EMP paper's classifier defaults, and its
# own settings.
_PARAMS = estimator_params(
    [
        "hidden",
        "grid",
        "k",
        "steps",
        "lamb",
        "beta",
        "prune",
        "edge_score",
        "node_score",
        "rounds",
        "round_steps",
        "validation_fraction",
        "seed",
    ],
    defaults={
        "hidden": (64,),
        "steps": 100,
        "lamb": 0.0,
        "prune": "nodes",
        "node_score": "max_in_out",
        "rounds": 3,
    },
    extra={
        "opt": ("Adam", Setting("the optimiser (full batch)", Options(("Adam", "LBFGS")))),
        "lr": (
            1e-2,
            Setting(
                "learning rate (Adam; LBFGS uses it as its step scale)",
                Interval(float, 0, closed="neither"),
            ),
        ),
        "method": (
            "emp",
            Setting(
                "EMP, or pykan's node threshold (node_th) for comparison",
                Options(("emp", "threshold")),
            ),
        ),
        "prune_schedule": (
            "one-shot",
            Setting(
                "prune once after training without fine-tuning (the paper), prune between "
                "training rounds (rounds of round_steps steps, decided on validation "
                "cross-entropy), or not at all",
                Options(("one-shot", "rounds", "none")),
            ),
        ),
        "node_th": (
            1e-2,
            Setting("the threshold pruner's node threshold (pykan's default)", Interval(float, 0)),
        ),
        "max_accuracy_drop": (
            0.05,
            Setting(
                "one-shot pruning that costs more validation accuracy than this (against the "
                "dense model) is retried gentler (beta x 1.5, thresholds / 1.5), up to 6 times, "
                "then the dense model is kept; 1 turns the safeguard off (the paper's setting)",
                Interval(float, 0, 1, closed="both"),
            ),
        ),
    },
)


class EMPKANClassifier(ClassifierMixin, BaseEstimator):
    """A KAN classifier (logits out, cross-entropy loss), pruned with EMP.

    {parameters}

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
    feature_names_in_ : ndarray of str
        The DataFrame's columns (only when fitted on a DataFrame).

    Notes
    -----
    The edge score defaults to pykan's attribution, pooled per node as the paper pools its
    scores (``node_score="max_in_out"``). The paper's own edge score, ``"coefficient"`` (mean
    |scaled spline coefficient|), ignores pykan's base branch ``scale_base * silu(x)``, which
    carries much of a trained pykan edge: on digits it pruned worse than a random choice of as
    many nodes (benchmarks/bench_digits.py); it stays available by name.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from emp_kan import EMPKANClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = EMPKANClassifier().fit(X, y)  # a [4, 64, 3] KAN, then EMP on its hidden nodes
    >>> clf.score(X, y) > 0.9
    True
    >>> clf.hidden_kept_[0] < 64  # hidden nodes left of 64
    True
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    __init__ = keyword_init(_PARAMS)

    def _pruner(self):
        if self.method == "emp":
            return EMPPruner(
                target=self.prune,
                beta=self.beta,
                edge_score=self.edge_score,
                node_score=self.node_score,
            )
        if self.method == "threshold":
            return ThresholdPruner(
                node_th=self.node_th,
                target=self.prune,
                edge_score=self.edge_score,
                node_score=self.node_score,
            )
        raise ValueError(f"unknown method {self.method!r}; use 'emp' or 'threshold'")

    def fit(self, X: Any, y: Any) -> EMPKANClassifier:
        """Train on ``X (n_samples, n_features)`` and labels ``y (n_samples,)``, then prune."""

        checked_params(self, _PARAMS)  # bad settings fail before any work
        X, y = checked_fit_data(self, X, y, classifier=True)
        pruner = self._pruner()
        classes, codes = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError("y has one class only; a classifier needs at least two")
        order = np.random.default_rng(self.seed).permutation(X.shape[0])
        X, codes = X[order], codes[order]
        x = torch.tensor(X, dtype=torch.float32)
        onehot = torch.nn.functional.one_hot(torch.tensor(codes), classes.size).float()
        rows = Split.of_training_rows(x, onehot, self.validation_fraction)
        fit_rows = rows.fit
        model = adapter.make_kan(
            [X.shape[1], *self.hidden, classes.size], grid=self.grid, k=self.k, seed=self.seed
        )
        dense = train(
            model,
            fit_rows,
            steps=self.steps,
            lamb=self.lamb,
            seed=self.seed,
            opt=self.opt,
            loss="cross_entropy",
            lr=self.lr,
        )
        self.result_ = None
        self.decisions_ = []
        if self.prune_schedule == "one-shot":
            step = self._one_shot(dense, rows, pruner)
            pruned = dense if step is None else step.model
            self.decisions_ = [] if step is None else [vars(d).copy() for d in step.decisions]
        elif self.prune_schedule == "rounds":
            self.result_ = prune_rounds(
                dense,
                rows,
                pruner,
                rounds=self.rounds,
                steps=self.round_steps,
                lamb=self.lamb,
                initial_steps=0,
                final_steps=0,
                seed=self.seed,
                opt=self.opt,
                loss="cross_entropy",
            )
            pruned = self.result_.model
        else:
            pruned = dense
        self.classes_ = classes
        self.dense_model_ = dense
        self.model_ = pruned
        self.hidden_kept_ = adapter.widths(pruned)[1:-1]
        never = sorted(set(range(classes.size)) - set(self._codes(pruned, x).tolist()))
        if never:
            log.warning(
                "the classifier never predicts class(es) %s on its training rows; prune less "
                "(a larger beta) or train longer",
                ", ".join(str(classes[k]) for k in never),
            )
        return self

    @staticmethod
    def _codes(model: Any, x: torch.Tensor) -> np.ndarray:
        """The predicted class index of each row of ``x``."""
        return adapter.forward_float64(model, x).argmax(dim=1).numpy()

    def _one_shot(self, dense: Any, rows: Split, pruner: Any) -> Any:
        """The EMP paper's one-shot pruning step, retried gentler while it costs more than
        ``max_accuracy_drop`` of validation accuracy; None where every try did (the dense
        model is kept)."""
        val_x, val_codes = rows.validation["x"], rows.validation["y"].argmax(dim=1).numpy()
        dense_accuracy = float(np.mean(self._codes(dense, val_x) == val_codes))
        for attempt in range(_ONE_SHOT_TRIES):
            step = prune_step(dense, rows.fit["train_input"], pruner)
            accuracy = float(np.mean(self._codes(step.model, val_x) == val_codes))
            if accuracy >= dense_accuracy - self.max_accuracy_drop:
                return step
            log.info(
                "one-shot pruning (try %d) cost validation accuracy %.3f -> %.3f; retrying gentler",
                attempt + 1,
                dense_accuracy,
                accuracy,
            )
            pruner = pruner.backed_off(1.5)
        log.warning(
            "every one-shot pruning tried cost more than %.3g of validation accuracy; the dense "
            "model is kept",
            self.max_accuracy_drop,
        )
        return None

    def _logits(self, X: Any, model: Any = None) -> torch.Tensor:
        X = checked_rows(self, X)
        return adapter.forward_float64(
            model if model is not None else self.model_, torch.tensor(X, dtype=torch.float64)
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)`` (softmax of the logits)."""
        return torch.softmax(self._logits(X), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, ``(n_samples,)``."""
        logits = self._logits(X)  # raises NotFittedError before classes_ is read
        return self.classes_[logits.argmax(dim=1).numpy()]

    def log_loss(self, X: Any, y: Any, dense: bool = False) -> float:
        """Mean cross-entropy on ``(X, y)`` of the pruned model (or of the dense one)."""
        logits = self._logits(X, getattr(self, "dense_model_", None) if dense else None)
        codes = np.searchsorted(self.classes_, np.asarray(y))
        if (codes >= self.classes_.size).any() or (self.classes_[codes] != np.asarray(y)).any():
            raise ValueError("y holds labels the classifier was not fitted on")
        return float(torch.nn.functional.cross_entropy(logits, torch.tensor(codes)))

    def dense_score(self, X: Any, y: Any) -> float:
        """Accuracy of the model before pruning."""
        logits = self._logits(X, getattr(self, "dense_model_", None))
        predicted = self.classes_[logits.argmax(dim=1).numpy()]
        return float(np.mean(predicted == np.asarray(y)))

    # pykan models hold lambdas that pickle cannot store: they travel as model_state dicts.
    def __getstate__(self) -> dict:
        return picklable_state(self.__dict__, ("model_", "dense_model_"))

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(restored_state(state, ("model_", "dense_model_")))


EMPKANClassifier.__doc__ = EMPKANClassifier.__doc__.replace(
    "    {parameters}", parameters_doc(_PARAMS)
)
