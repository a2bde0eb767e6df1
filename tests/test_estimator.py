"""EMPKANRegressor behaves like a scikit-learn estimator and checks its input up front."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sympy as sp
from sklearn.base import clone

from emp_kan import EMPKANRegressor

SMALL = {"hidden": (2,), "steps": 8, "round_steps": 2, "rounds": 1}


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(60, 2))
    return X, 2 * X[:, 0] + X[:, 1] ** 2


@pytest.fixture(scope="module")
def fitted(xy):
    X, y = xy
    frame = pd.DataFrame(X, columns=["mass", "speed"])
    return EMPKANRegressor(**SMALL).fit(frame, y), frame, y


def test_params_are_stored_as_given_and_clone_works():
    est = EMPKANRegressor(beta=1.5, library=("x", "sin"), seed=3)
    assert est.get_params()["beta"] == 1.5
    assert est.get_params()["library"] == ("x", "sin")
    copy = clone(est.set_params(rounds=2))
    assert copy.get_params() == est.get_params() and copy is not est


def test_fit_returns_self_and_sets_fitted_state(fitted):
    est, frame, y = fitted
    assert [str(v) for v in est.formula_.variables] == ["mass", "speed"]
    assert est.n_features_in_ == 2 and list(est.feature_names_in_) == ["mass", "speed"]
    assert est.variable_names_ == ["mass", "speed"]
    assert isinstance(est.history_, list) and est.model_ is not None
    assert est.predict(frame).shape == (60,)
    assert est.predict(frame, use_formula=True).shape == (60,)
    from sklearn.metrics import r2_score

    score = est.score(frame, y)
    assert score == pytest.approx(r2_score(y, est.predict(frame)))
    assert score > 0.8  # y = 2*mass + speed**2 is well within a [2, 2, 1] KAN's reach
    assert isinstance(est.sympy(), sp.Expr)
    assert {s.name for s in est.sympy().free_symbols} <= {"mass", "speed"}
    assert est.latex() == sp.latex(est.sympy())
    graph = est.to_networkx()
    assert graph.nodes["L0_N0"]["label"] == "mass"


def test_numpy_inputs_are_named_x0_x1(xy):
    X, y = xy
    est = EMPKANRegressor(**SMALL, symbolic=False).fit(X, y)
    assert est.variable_names_ == ["x0", "x1"]
    assert not hasattr(est, "feature_names_in_")  # scikit-learn's: a DataFrame's columns only
    assert est.formula_ is None and est.equations_ is None
    with pytest.raises(ValueError, match="symbolic=True"):
        est.sympy()


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.ones(20), np.ones(20), "(?s)Expected 2D array.*Reshape your data"),
        (np.full((20, 2), np.nan), np.ones(20), "Input X contains NaN"),
        (np.ones((5, 2)), np.ones(5), "5 sample.* a minimum of 10 is required"),
        (np.ones((20, 2)), np.ones(19), "inconsistent numbers of samples: \\[20, 19\\]"),
        (np.ones((20, 2)), np.full(20, np.inf), "Input y contains infinity"),
        ([["a", "b"]] * 20, np.ones(20), "could not convert string to float"),
    ],
)
def test_bad_input_raises_before_training(X, y, message):
    with pytest.raises(ValueError, match=message):
        EMPKANRegressor(**SMALL).fit(X, y)


def test_the_estimator_runs_the_threshold_pruner_and_rejects_unknown_ones(xy):
    X, y = xy
    with pytest.raises(ValueError, match="method must be one of emp, threshold, got 'magic'"):
        EMPKANRegressor(method="magic").fit(X, y)
    with pytest.raises(ValueError, match="node_score must be one of"):
        EMPKANRegressor(node_score="magic").fit(X, y)
    est = EMPKANRegressor(**SMALL, method="threshold", symbolic=False).fit(X, y)
    assert est.result_.pruner.startswith("ThresholdPruner")


def test_predict_checks_the_feature_count(fitted):
    est, _, _ = fitted
    with pytest.raises(ValueError, match="3 features"):
        est.predict(np.ones((4, 3)))


def test_a_fitted_estimator_pickles_and_predicts_the_same(fitted, tmp_path):
    import pickle

    import joblib

    est, frame, y = fitted
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict(frame), est.predict(frame))
    assert back.sympy() == est.sympy() and back.score(frame, y) == est.score(frame, y)
    assert back.result_.model is back.model_ and len(back.history_) == len(est.history_)
    path = tmp_path / "est.joblib"
    joblib.dump(est, path)
    np.testing.assert_array_equal(joblib.load(path).predict(frame), est.predict(frame))
    # The estimator itself is untouched by pickling.
    assert est.result_.model is est.model_


def test_save_and_load_round_trip_without_pickle(fitted, tmp_path):
    est, frame, y = fitted
    path = est.save(tmp_path / "model.empkan")
    back = EMPKANRegressor.load(path)
    np.testing.assert_array_equal(back.predict(frame), est.predict(frame))
    np.testing.assert_array_equal(
        back.predict(frame, use_formula=True), est.predict(frame, use_formula=True)
    )
    assert back.sympy() == est.sympy() and back.get_params() == est.get_params()
    assert back.history_ == est.history_ and back.result_.model is back.model_
    assert back.to_networkx().nodes["L0_N0"]["label"] == "mass"
    assert [p.name for p in tmp_path.iterdir()] == ["model.empkan"]  # no temporary left
    pd.testing.assert_frame_equal(back.equations_, est.equations_)
    assert list(back.feature_names_in_) == ["mass", "speed"]


def test_equations_lists_every_candidate_with_the_chosen_one_marked(fitted):
    est, frame, _ = fitted
    table = est.equations_
    assert list(table.columns) == [
        "candidate",
        "route",
        "equation",
        "sympy_format",
        "complexity",
        "val_rmse",
        "edges",
        "chosen",
    ]
    assert len(table) >= 2 and table["chosen"].sum() == 1
    chosen = table[table["chosen"]].iloc[0]
    assert chosen["sympy_format"] == est.sympy() and chosen["equation"] == str(est.sympy())
    for row in table.itertuples():
        assert {s.name for s in row.sympy_format.free_symbols} <= {"mass", "speed"}
        # each row's validation RMSE is its formula's on the rows the choice was made on
        values = sp.lambdify(sp.symbols("mass speed", real=True), row.sympy_format, "numpy")
        assert np.isfinite(row.val_rmse) and row.complexity >= 1
        assert np.all(np.isfinite(np.broadcast_to(values(*frame.to_numpy().T), (len(frame),))))


def test_model_selection_accuracy_picks_the_most_accurate_candidate(xy):
    X, y = xy
    best = EMPKANRegressor(**SMALL, all_routes=True).fit(X, y)
    accurate = EMPKANRegressor(**SMALL, all_routes=True, model_selection="accuracy").fit(X, y)
    table = accurate.equations_
    # the same candidates (the choice runs after them); the most accurate, of ties the simplest
    assert list(table["equation"]) == list(best.equations_["equation"])
    lowest = table["val_rmse"].min()
    chosen = table[table["chosen"]].iloc[0]
    floor = 1e-5 * float(np.std(y))
    assert chosen["val_rmse"] <= max(lowest, floor)
    assert (
        chosen["complexity"] == table[table["val_rmse"] <= max(lowest, floor)]["complexity"].min()
    )
    with pytest.raises(ValueError, match="model_selection must be one of best, accuracy"):
        EMPKANRegressor(model_selection="score").fit(X, y)


def test_a_log_route_estimator_saves_and_predicts_the_same(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.uniform(0.5, 2, size=(60, 2)) * np.where(rng.random((60, 1)) < 0.5, -1, 1)
    y = X[:, 0] * X[:, 1] ** 2
    est = EMPKANRegressor(**SMALL, route="log").fit(X, y)
    assert est.transform_ is not None and est.score(X, y) > 0.9
    back = EMPKANRegressor.load(est.save(tmp_path / "m.empkan"))
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.transform_ == est.transform_


def test_save_never_replaces_a_file_it_did_not_write(tmp_path, fitted):
    est = fitted[0]
    data = tmp_path / "measurements.csv"
    data.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="not a saved emp-kan estimator; emp-kan never replaces"):
        est.save(data)
    assert data.read_text() == "x,y\n1,2\n"
    with pytest.raises(ValueError, match="does not exist"):
        est.save(tmp_path / "missing" / "m.empkan")
    saved = est.save(tmp_path / "m.empkan")
    assert est.save(saved) == saved  # an earlier save is ours to replace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.empkan", "measurements.csv"]


def test_a_log_y_route_estimator_predicts_from_its_inputs_as_given():
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, size=(60, 1))
    y = np.exp(np.sin(2 * X[:, 0]))
    est = EMPKANRegressor(**SMALL, route="log-y").fit(X, y)
    assert est.transform_ is not None and not est.transform_.log_inputs
    # The KAN predicts log|y| from x itself: its exp must match the labels, not garbage.
    assert est.score(X, y) > 0.9


def test_load_refuses_files_it_did_not_write(tmp_path, fitted):
    import joblib
    import torch

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.ones(2)}, other)
    with pytest.raises(ValueError, match="not a saved emp-kan estimator"):
        EMPKANRegressor.load(other)
    pickled = tmp_path / "est.joblib"
    joblib.dump(fitted[0], pickled)  # a pickle would run code on loading: refused unread
    with pytest.raises(ValueError, match="cannot read"):
        EMPKANRegressor.load(pickled)


def test_model_state_round_trips_symbolic_edges():
    import torch

    from emp_kan.kan import adapter

    model = adapter.make_kan([2, 3, 1], grid=4, k=3, seed=1)
    adapter.fix_symbolic_edge(model, 0, 1, 0, "sin", [2.0, 0.5, 1.5, -0.2])
    back = adapter.model_from_state(adapter.model_state(model))
    x = torch.rand(50, 2) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(back.forward(x), model.forward(x), atol=1e-7)
    assert adapter.symbolic_edge(back, 0, 1, 0) == adapter.symbolic_edge(model, 0, 1, 0)


def test_numpy_inputs_take_variable_names(xy):
    X, y = xy
    est = EMPKANRegressor(**SMALL).fit(X, y, variable_names=["mass", "speed"])
    assert est.variable_names_ == ["mass", "speed"]
    assert {s.name for s in est.sympy().free_symbols} <= {"mass", "speed"}
    for names, message in (
        (["a"], "1 names for 2 features"),
        (["a", "a"], "distinct"),
        (["sin", "b"], "'sin'"),
        (["a b", "c"], "'a b'"),
        ("ab", "a list of names"),
    ):
        with pytest.raises(ValueError, match=message):
            EMPKANRegressor(**SMALL).fit(X, y, variable_names=names)


def test_routes_after_an_exact_formula_are_skipped_unless_all_routes(caplog):
    rng = np.random.default_rng(2)
    X = rng.uniform(0.5, 2, size=(80, 2))
    y = X[:, 0] * X[:, 1] ** 2  # the log route, tried first, reads the law
    with caplog.at_level("INFO", logger="emp_kan"):
        quick = EMPKANRegressor(**SMALL).fit(X, y)
    assert "routes none, log-y skipped" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="emp_kan"):
        every = EMPKANRegressor(**SMALL, all_routes=True).fit(X, y)
    assert "skipped" not in caplog.text
    assert quick.get_params()["all_routes"] is False and every.get_params()["all_routes"]
    np.testing.assert_allclose(quick.predict(X, use_formula=True), y, rtol=1e-6)
    np.testing.assert_allclose(every.predict(X, use_formula=True), y, rtol=1e-6)
    with pytest.raises(ValueError, match="all_routes must be True or False"):
        EMPKANRegressor(**SMALL, all_routes="yes").fit(X, y)
