"""EMPKANClassifier: a real pykan KAN trained with cross-entropy, pruned one shot or in rounds."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score

from emp_kan import EMPKANClassifier

SMALL = {"hidden": (8,), "steps": 25, "lr": 0.05}


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    keep = y < 3
    x, y = x[keep][:240] / 16 * 2 - 1, y[keep][:240]
    names = np.array(["zero", "one", "two"])[y]  # string labels, as users have them
    return x[:180], names[:180], x[180:], names[180:]


@pytest.fixture(scope="module")
def fitted(digits):
    x, y, _, _ = digits
    return EMPKANClassifier(**SMALL).fit(x, y)


def test_predictions_follow_scikit_learn_conventions(fitted, digits):
    _, _, x_test, y_test = digits
    assert list(fitted.classes_) == ["one", "two", "zero"]
    proba = fitted.predict_proba(x_test)
    assert proba.shape == (60, 3) and np.allclose(proba.sum(axis=1), 1.0)
    predicted = fitted.predict(x_test)
    assert set(predicted) <= set(fitted.classes_)
    assert list(predicted) == list(fitted.classes_[proba.argmax(axis=1)])
    assert fitted.score(x_test, y_test) == accuracy_score(y_test, predicted)
    assert fitted.dense_score(x_test, y_test) > 0.9  # three digits are easy for a trained KAN
    assert math.isfinite(fitted.log_loss(x_test, y_test))
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "model_")


def test_one_shot_node_emp_keeps_floor_beta_n_eff_hidden_nodes(fitted):
    (decision,) = fitted.decisions_
    assert decision["kind"] == "nodes" and decision["alive_before"] == 8
    assert decision["kept"] == math.floor(decision["n_eff"])  # beta = 1
    assert fitted.hidden_kept_ == [decision["kept"]] and decision["kept"] < 8
    assert decision["preserved_mass"] >= decision["mass_bound"] - 1e-9


def test_a_fitted_classifier_pickles_and_predicts_the_same(fitted, digits):
    _, _, x_test, _ = digits
    back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(back.predict_proba(x_test), fitted.predict_proba(x_test))
    assert back.dense_score(x_test, digits[3]) == fitted.dense_score(x_test, digits[3])


def test_the_round_loop_prunes_a_classifier_on_validation_cross_entropy(digits):
    x, y, _, _ = digits
    clf = EMPKANClassifier(
        **SMALL, prune_schedule="rounds", prune="both", rounds=1, round_steps=5
    ).fit(x, y)
    history = clf.result_.history
    assert history and all(math.isfinite(r.val_rmse_before) for r in history)
    assert clf.result_.initial_val_rmse < math.log(3)  # a cross-entropy, better than chance
    assert clf.model_ is clf.result_.model and clf.score(x, y) > 0.9  # every class still out


@pytest.mark.parametrize(
    "params, labels, message",
    [
        ({"method": "magic"}, None, "method must be one of emp, threshold, got 'magic'"),
        ({"prune_schedule": "twice"}, None, "prune_schedule must be one of"),
        ({"opt": "SGD"}, None, "opt must be one of Adam, LBFGS"),
        ({}, "one", "one class only"),
    ],
)
def test_bad_settings_fail_before_training(digits, params, labels, message):
    x, y, _, _ = digits
    y = np.full(len(y), labels) if labels else y
    with pytest.raises(ValueError, match=message):
        EMPKANClassifier(**params).fit(x, y)


def test_one_shot_pruning_that_costs_accuracy_is_retried_gentler(caplog):
    from sklearn.datasets import load_iris
    from sklearn.model_selection import cross_val_score

    X, y = load_iris(return_X_y=True)
    # The third fold of a plain 3-fold split lost a class to pruning (0.66) without the safeguard.
    scores = cross_val_score(EMPKANClassifier(), X, y, cv=3)
    assert min(scores) >= 0.9, scores
    harsh = EMPKANClassifier(beta=0.05, max_accuracy_drop=1.0).fit(X, y)  # the paper's way
    guarded = EMPKANClassifier(beta=0.05).fit(X, y)
    assert guarded.hidden_kept_[0] >= harsh.hidden_kept_[0]
    assert guarded.score(X, y) >= guarded.dense_score(X, y) - 0.1
    predicted = set(harsh.predict(X).tolist())
    warned = "never predicts class" in caplog.text
    assert warned == (predicted != {0, 1, 2})
