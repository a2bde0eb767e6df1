"""The comparisons users ask for: Operon on the same rows, label noise, and the bench's tally."""

from __future__ import annotations

import random
import sys
from dataclasses import replace

import numpy as np
import pytest
import sympy as sp
import torch

from emp_kan.app.bench import BenchSettings, settings_hash
from emp_kan.app.bench_summary import _compare, summarise
from emp_kan.app.cli import main
from emp_kan.baselines.operon import INSTALL_HINT, operon_expression, run_operon
from emp_kan.data.problems import feynman_problem, formula_problem, with_label_noise


def test_operon_recovers_a_product_on_the_fit_rows_and_is_scored_on_the_test_rows():
    problem = feynman_problem(8, samples=120, seed=0)  # N_n * mu
    run = run_operon(problem, seed=0)
    assert run.exact is True
    assert run.test_r2 > 0.999999
    assert {str(s) for s in run.formula.free_symbols} == {"N_n", "mu"}
    summary = run.summary()
    assert summary["budget"] == {
        **summary["budget"],
        "population_size": 1000,
        "generations": 1000,
        "max_length": 30,
    }
    assert summary["raw_formula"] and summary["seconds"] > 0


def test_operon_strings_are_read_without_evaluating_them():
    expr = operon_expression("((2.0 * x0) * (0.5 * x1)) + (3.0 - 3.0)", ["m", "lambda"])
    assert sp.simplify(expr - sp.Symbol("m") * sp.Symbol("lambda")) == 0
    with pytest.raises(ValueError):
        operon_expression("__import__('os').system('true')", ["x"])


def test_without_pyoperon_the_operon_method_exits_2_with_the_install_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "pyoperon", None)  # import pyoperon now fails
    monkeypatch.setitem(sys.modules, "pyoperon.sklearn", None)
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--equations", "8", "--methods", "emp,operon", "--out", "b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'emp-kan[sr]'" in err
    assert main(["discover", "--compare", "operon", "--out", "d"]) == 2
    assert INSTALL_HINT in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_without_rils_rols_the_rils_method_exits_2_with_the_install_line(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "rils_rols", None)  # import rils_rols now fails
    monkeypatch.setitem(sys.modules, "rils_rols.rils_rols", None)
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--equations", "8", "--methods", "emp,rils", "--out", "b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-build-isolation rils-rols" in err
    assert list(tmp_path.iterdir()) == []


def test_label_noise_touches_training_labels_only_is_seeded_and_leaves_global_rngs_alone():
    problem = formula_problem("x*y", "x=0:1,y=0:1", samples=400, seed=3)
    states = (
        random.getstate(),
        np.random.get_state()[1].copy(),  # noqa: NPY002
        torch.random.get_rng_state(),
    )
    noisy = with_label_noise(problem, 0.1, seed=3)
    again = with_label_noise(problem, 0.1, seed=3)
    other = with_label_noise(problem, 0.1, seed=4)
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])  # noqa: NPY002
    assert torch.equal(torch.random.get_rng_state(), states[2])
    clean, dirty = problem.dataset, noisy.dataset
    assert torch.equal(dirty["test_label"], clean["test_label"])
    assert torch.equal(dirty["train_input"], clean["train_input"])
    added = dirty["train_label"] - clean["train_label"]
    assert float(added.std()) == pytest.approx(0.1 * float(clean["train_label"].std()), rel=0.15)
    assert torch.equal(again.dataset["train_label"], dirty["train_label"])
    assert not torch.equal(other.dataset["train_label"], dirty["train_label"])
    assert with_label_noise(problem, 0.0) is problem
    assert noisy.name.endswith("noise0.1") and noisy.truth == problem.truth
    for bad in (-0.1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="noise must be"):
            with_label_noise(problem, bad)


def test_every_bench_setting_changes_the_fingerprint():
    # Rows of other settings are never mixed into one results file: each budget setting must
    # change the fingerprint a resumed bench compares.
    base = BenchSettings()
    changed = {
        "samples": 300,
        "steps": 40,
        "round_steps": 15,
        "rounds": 3,
        "capacity": 0,
        "all_routes": not base.all_routes,
    }
    for name, value in changed.items():
        assert settings_hash(replace(base, **{name: value})) != settings_hash(base), name
    assert settings_hash(BenchSettings()) == settings_hash(BenchSettings())
    # the noise level is not a budget: one folder holds every level, each row its own
    assert not hasattr(base, "noise")


def _row(method, exact, rmse, edges=None, seconds=1.0, r2=0.9):
    return {
        "key": f"1:{method}:0",
        "equation": 1,
        "method": method,
        "seed": 0,
        "exact": exact,
        "test_rmse": rmse,
        "edges": edges,
        "seconds": seconds,
        "test_r2": r2,
    }


@pytest.mark.parametrize(
    ("emp", "operon", "outcome"),
    [
        (_row("emp", True, 1e-3, 3), _row("operon", False, 1e-6), "win"),
        (_row("emp", False, 1e-3, 3), _row("operon", True, 1e-2), "loss"),
        (_row("emp", False, 1e-3, 3), _row("operon", False, 1e-2), "win"),
        (_row("emp", False, 1e-3, 3), _row("operon", False, 1.5e-3), "tie"),
        (_row("emp", False, 1e-2, 3), _row("operon", False, 1e-3), "loss"),
    ],
)
def test_emp_against_operon_is_settled_by_exactness_then_formula_error(emp, operon, outcome):
    assert _compare(emp, operon) == outcome


def test_the_summary_reports_the_share_of_accurate_formulas():
    rows = [_row("emp", True, 1e-3, 3, r2=0.9999), _row("operon", False, 1e-3, r2=0.99)]
    rows[1]["key"] = "1:operon:0"
    summary = summarise(rows)
    assert summary["methods"]["emp"]["accurate_rate"] == 1.0
    assert summary["methods"]["operon"]["accurate_rate"] == 0.0
    assert summary["emp_versus"]["operon"] == {"win": 1, "loss": 0, "tie": 0}


def test_the_summary_counts_exact_recoveries_per_noise_level_and_pairs_within_a_level():
    rows = [
        dict(_row("emp", True, 1e-3, 3), noise=0.0),
        dict(_row("emp", False, 1e-2, 3), noise=0.01),
        dict(_row("operon", False, 1e-2), noise=0.0),
        dict(_row("operon", True, 1e-3), noise=0.01),
    ]
    summary = summarise(rows)
    assert summary["by_noise"]["emp"] == {0.0: (1, 1), 0.01: (0, 1)}
    assert summary["by_noise"]["operon"] == {0.0: (0, 1), 0.01: (1, 1)}
    # EMP at 0 meets Operon at 0, and at 0.01 Operon at 0.01: one win, one loss
    assert summary["emp_versus"]["operon"] == {"win": 1, "loss": 1, "tie": 0}


def test_noise_levels_are_finite_shares_of_the_label_std():
    from emp_kan.app.bench import parse_levels

    assert parse_levels("0, 0.001,0.01,0.1,0.01") == [0.0, 0.001, 0.01, 0.1]
    for bad in ("-0.1", "nan", "x", "0,,1"):
        with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
            parse_levels(bad)


def test_pykan_loads_without_its_heavy_imports_and_its_own_tools_still_get_the_real_ones(tmp_path):
    # scikit-learn, pyplot and pandas are most of pykan's import time; each is loaded only
    # when pykan first uses it (its symbolic fit, its plot), and then it is the real module.
    import subprocess

    probe = (
        "import sys, os, torch, matplotlib\n"
        "matplotlib.use('Agg')\n"
        "from emp_kan.kan import adapter\n"
        "from emp_kan.kan._pykan import quiet_pykan\n"
        "model = adapter.make_kan([1, 2, 1], grid=3, seed=0)\n"
        "print(any(m in sys.modules for m in ('sklearn', 'matplotlib.pyplot', 'pandas')))\n"
        "x = torch.linspace(-1, 1, 40)[:, None]\n"
        "with quiet_pykan():\n"
        "    model(x)\n"
        f"    model.plot(folder={str(tmp_path)!r})\n"
        "    model.fix_symbolic(0, 0, 0, 'sin', verbose=False)\n"
        "real = sys.modules.get('sklearn.linear_model')\n"
        "print(real is not None and hasattr(real, 'Ridge'))\n"  # the real module, not a stand-in
        "print(hasattr(sys.modules.get('matplotlib.pyplot'), 'subplots'))\n"
        "print(len(os.listdir(" + repr(str(tmp_path)) + ")) > 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True", "True", "True"]
