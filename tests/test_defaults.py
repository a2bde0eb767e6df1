"""One declaration of every setting: the CLI, the estimators and the bench derive from it."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

from emp_kan import EMPKANClassifier, EMPKANRegressor, prune_rounds
from emp_kan.app.bench import BenchSettings
from emp_kan.app.cli import build_parser
from emp_kan.discovery.config import DiscoverConfig, settings_for
from emp_kan.pruning.schedule import DEFAULT_SCHEDULE


def _discover_defaults() -> dict:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return vars(sub.choices["discover"].parse_args([]))


def test_every_entry_point_takes_the_tables_settings_with_its_defaults():
    config = DiscoverConfig()
    cli = _discover_defaults()
    for name, (default, setting) in settings_for("cli").items():
        expected = default if setting.cli_default is None else setting.cli_default
        assert cli[name] == expected, name
    est = EMPKANRegressor().get_params()
    for name, (default, _) in settings_for("estimator").items():
        assert est[name] == default == getattr(config, name), name
    bench = BenchSettings()
    for name, (default, _) in settings_for("bench").items():
        assert getattr(bench, name) == default, name
    # the bench's own: rows per task, and the Feynman units table on or off
    assert {f.name for f in fields(BenchSettings)} == {
        "samples",
        "units",
        *settings_for("bench"),
    }
    assert bench.units is False


def test_the_round_loop_defaults_are_the_settings_defaults():
    config = DiscoverConfig()
    loop = inspect.signature(prune_rounds).parameters
    assert config.tol == DEFAULT_SCHEDULE.tol and config.floor == DEFAULT_SCHEDULE.floor
    assert config.validation_fraction == DEFAULT_SCHEDULE.validation_fraction
    assert loop["schedule"].default is None  # None means DEFAULT_SCHEDULE
    assert loop["rounds"].default == config.rounds
    assert loop["steps"].default == config.round_steps


def test_the_estimators_take_keywords_only_and_store_them_as_given():
    with pytest.raises(TypeError):
        EMPKANRegressor((3,))  # keyword-only, as scikit-learn recommends
    with pytest.raises(TypeError, match="unexpected keyword.*width"):
        EMPKANRegressor(width=(3,))
    est = EMPKANRegressor(hidden=[3], beta="not checked until fit")
    assert est.hidden == [3] and est.beta == "not checked until fit"
    assert EMPKANClassifier().get_params()["hidden"] == (64,)  # its own default


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("beta", 0.0, "beta must be a positive finite number"),
        ("hidden", (0,), "hidden must be at least 1 positive whole number"),
        ("route", "sqrt", "route must be one of auto, none, log, log-y"),
        ("validation_fraction", 1.0, "validation_fraction must be a finite number > 0 and < 1"),
        ("progress", 1, "progress must be True or False"),
        ("library", ("x", "nonsense"), "nonsense"),
    ],
)
def test_one_validator_names_the_setting_at_every_entry(name, value, message):
    import numpy as np

    with pytest.raises(ValueError, match=message):
        DiscoverConfig(**{name: value}).check()
    X = np.zeros((20, 2))
    with pytest.raises(ValueError, match=message):
        EMPKANRegressor(**{name: value}).fit(X, X[:, 0])
