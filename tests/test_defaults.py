"""One set of defaults: prune_rounds, the CLI, the estimator and the bench agree."""

from __future__ import annotations

import inspect

from emp_kan import EMPKANRegressor, prune_rounds
from emp_kan.app.bench import BenchSettings
from emp_kan.app.cli import build_parser
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.pruning.schedule import DEFAULT_SCHEDULE


def _discover_defaults() -> dict:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return vars(sub.choices["discover"].parse_args([]))


def test_the_four_entry_points_share_one_set_of_defaults():
    config = DiscoverConfig()
    loop = inspect.signature(prune_rounds).parameters
    cli = _discover_defaults()
    est = EMPKANRegressor().get_params()
    bench = BenchSettings()
    assert config.tol == DEFAULT_SCHEDULE.tol and config.floor == DEFAULT_SCHEDULE.floor
    assert loop["schedule"].default is None  # None means DEFAULT_SCHEDULE
    assert loop["rounds"].default == config.rounds == cli["rounds"] == est["rounds"]
    assert config.rounds == bench.rounds
    assert loop["steps"].default == config.round_steps == cli["round_steps"]
    assert config.round_steps == est["round_steps"] == bench.round_steps
    for name in ("tol", "floor", "lamb", "steps", "beta"):
        assert getattr(config, name) == cli[name] == est[name], name
    for name in ("tol", "floor", "lamb", "steps", "grid"):
        assert getattr(config, name) == getattr(bench, name), name
    assert cli["prune"] == est["prune"] == config.prune == "both"
