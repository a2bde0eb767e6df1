"""Units: read with pint, reduced to dimensionless groups before the KAN, and the law mapped
back to the user's variables, dimensionally consistent."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan.app.cli import main
from emp_kan.data.feynman import feynman_entry
from emp_kan.data.feynman_units import FEYNMAN_UNITS, feynman_units
from emp_kan.data.groups import buckingham
from emp_kan.data.problems import feynman_problem, with_units
from emp_kan.data.units import (
    dimension_of,
    dimension_text,
    parse_units_option,
    split_unit_header,
    unit_dimensions,
)
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.discover import discover
from emp_kan.symbolic.dimensions import (
    DimensionError,
    constant_dimensions,
    dimension_of_expression,
)


def test_units_are_read_as_exponents_of_the_si_base_dimensions():
    newton = dimension_of("N")
    assert newton == dimension_of("kg*m/s^2") == dimension_of("kg * m / s**2")
    assert dimension_text(newton) == "kg*m/s^2"
    assert dimension_text(dimension_of("m^3/(kg*s^2)")) == "m^3/(kg*s^2)"
    assert dimension_text(dimension_of("1")) == dimension_text(dimension_of("rad")) == "1"
    assert dimension_of("eV") == dimension_of("J")  # only the dimension matters


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("F=Newtonz", "cannot read the unit 'Newtonz'"),
        ("F", "write NAME=UNIT"),
        ("F=N,F=kg", "F has two units"),
        ("F=", "write NAME=UNIT"),
    ],
)
def test_a_units_option_that_cannot_be_read_is_refused_naming_the_part(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_units_option(spec)


def test_a_header_may_carry_its_unit_in_brackets():
    assert split_unit_header("F [N]") == ("F", "N")
    assert split_unit_header("m1[kg]") == ("m1", "kg")
    assert split_unit_header("G [m^3/(kg*s^2)]") == ("G", "m^3/(kg*s^2)")
    assert split_unit_header("P (bar)") == ("P (bar)", None)


def test_every_column_needs_a_unit_and_every_unit_a_column():
    with pytest.raises(ValueError, match="no unit given for 'r'"):
        unit_dimensions({"m": "kg", "y": "N"}, ["m", "r"], "y")
    with pytest.raises(ValueError, match="'z', which is not a column"):
        unit_dimensions({"m": "kg", "r": "m", "y": "N", "z": "s"}, ["m", "r"], "y")


_UNITS = ["kg", "m", "s", "A", "K", "1", "N", "J", "W", "C", "V", "T", "m/s", "J*s", "Pa"]


@settings(max_examples=60, deadline=None)
@given(
    units=st.lists(st.sampled_from(_UNITS), min_size=1, max_size=6),
    target_powers=st.lists(st.integers(-2, 2), min_size=6, max_size=6),
)
def test_groups_are_dimensionless_and_the_normaliser_has_the_targets_units(units, target_powers):
    dims = [dimension_of(u) for u in units]
    # a target some product of the inputs reaches, or (all powers 0) a pure number
    target = tuple(
        sum((Fraction(p) * d[i] for p, d in zip(target_powers, dims, strict=False)), Fraction(0))
        for i in range(7)
    )
    names = [f"x{k}" for k in range(len(units))]
    groups = buckingham(dims, target, names, "y")
    rank = sp.Matrix([[int(e) for e in d] for d in dims]).rank()
    assert groups is not None
    assert len(groups.names) == len(units) - rank
    table = {n: d for n, d in zip(names, dims, strict=True)}
    for expression in groups.group_expressions():
        assert not any(dimension_of_expression(expression, table))
    assert dimension_of_expression(groups.normaliser_expression(), table) == target
    for row in groups.exponents:  # each group keeps one of the inputs with exponent 1
        assert any(e == 1 for e in row)


def test_a_target_no_product_of_the_inputs_reaches_gives_no_groups():
    kg, m = dimension_of("kg"), dimension_of("m")
    assert buckingham([kg, kg, m], dimension_of("N"), ["m1", "m2", "r"], "F") is None


def test_coulombs_law_has_one_group_and_maps_back_to_the_law():
    dims = [dimension_of(u) for u in ("C", "C", "F/m", "m")]
    groups = buckingham(dims, dimension_of("N"), ["q1", "q2", "epsilon", "r"], "F")
    assert groups.describe()["groups"] == {"pi_1": "q1/q2"}
    pi_1 = sp.Symbol("pi_1", real=True)
    law = groups.to_data_units(pi_1 / (4 * sp.pi))
    q1, q2, epsilon, r = sp.symbols("q1 q2 epsilon r", real=True)
    assert sp.simplify(law - q1 * q2 / (4 * sp.pi * epsilon * r**2)) == 0
    # and the data in groups obey the reduced law on every row
    rng = np.random.default_rng(0)
    x = rng.uniform(1.0, 3.0, size=(50, 4))
    y = x[:, 0] * x[:, 1] / (4 * np.pi * x[:, 2] * x[:, 3] ** 2)
    data = {
        f"{p}_{k}": torch.tensor(v)
        for p in ("train", "test")
        for k, v in (("input", x), ("label", y[:, None]))
    }
    reduced = groups.apply(data)
    np.testing.assert_allclose(
        reduced["train_label"].numpy()[:, 0], reduced["train_input"].numpy()[:, 0] / (4 * np.pi)
    )


def test_rows_whose_normaliser_would_magnify_the_noise_are_left_out_of_the_kans_rows():
    # Eq. 63, E_f*n*p_d**2/(3*T*k_b), at 1% label noise: y/N(x) divides each row's noise by
    # |N|, which spans five decades on the bench's ranges
    from emp_kan.data.groups import dimensionless_view
    from emp_kan.data.problems import with_label_noise

    clean = with_units(feynman_problem(63, samples=300), feynman_units(63, "y"))
    noisy = with_label_noise(clean, 0.01)
    groups, view, note = dimensionless_view(noisy)
    _, everything, _ = dimensionless_view(clean)
    x = noisy.dataset["train_input"].double().numpy()
    normaliser = np.abs(groups.normaliser_of(x))
    kept = normaliser >= np.median(normaliser) / 10
    assert 0 < (~kept).sum() < len(kept) // 4
    assert view.dataset["train_input"].shape[0] == kept.sum()
    assert f"{(~kept).sum()} training row(s)" in note and "left out" in note
    # what is left carries noise within a small share of the label's spread
    clean_labels = groups.apply(clean.dataset)["train_label"].numpy()[kept, 0]
    noise = view.dataset["train_label"].numpy()[:, 0] - clean_labels
    assert np.abs(noise).max() < 0.5 * clean_labels.std()
    # the test rows are all there
    assert view.dataset["test_input"].shape == everything.dataset["test_input"].shape


def test_groups_the_data_cannot_take_are_refused_before_any_work():
    problem = feynman_problem(9, samples=20)
    problem.dataset["train_input"][0, 1] = 0.0  # q2 = 0 under q1/q2
    with pytest.raises(ValueError, match="not finite on 1 train row"):
        with_units(problem, {"q1": "C", "q2": "C", "epsilon": "F/m", "r": "m", "y": "N"})


@pytest.mark.parametrize("number", sorted(FEYNMAN_UNITS))
def test_every_feynman_equation_is_dimensionally_homogeneous_under_its_units(number):
    names, truth, _, _ = feynman_entry(number)
    target = "f" if "y" in names else "y"
    dims, wanted = unit_dimensions(feynman_units(number, target), names, target)
    assert dimension_of_expression(truth, dict(zip(names, dims, strict=True))) == wanted


def test_a_formula_adding_unlike_quantities_or_taking_sin_of_a_length_is_inhomogeneous():
    x, t = sp.symbols("x t", real=True)
    dims = {"x": dimension_of("m"), "t": dimension_of("s")}
    with pytest.raises(DimensionError, match="different dimensions"):
        dimension_of_expression(x + t, dims)
    with pytest.raises(DimensionError, match="function"):
        dimension_of_expression(sp.sin(x), dims)
    assert dimension_text(dimension_of_expression(x / t, dims)) == "m/s"


def test_a_coefficient_carries_the_units_its_term_lacks():
    m1, m2, r = sp.symbols("m1 m2 r", real=True)
    g = sp.Float(6.674e-11)
    dims = {"m1": dimension_of("kg"), "m2": dimension_of("kg"), "r": dimension_of("m")}
    carried = constant_dimensions(g * m1 * m2 / r**2, dims, dimension_of("N"))
    assert dimension_text(carried[g]) == "m^3/(kg*s^2)"
    assert constant_dimensions(g * sp.exp(r), dims, dimension_of("N")) is None


def test_with_units_the_kan_learns_the_law_between_groups_and_returns_the_law(tmp_path):
    problem = with_units(
        feynman_problem(9, samples=200),
        {"q1": "C", "q2": "C", "epsilon": "F/m", "r": "m", "y": "N"},
    )
    report, runs = discover(
        problem, DiscoverConfig(compare=False, steps=30, round_steps=10, rounds=2, seed=0)
    )
    assert report["units"]["groups"] == {"pi_1": "q1/q2"}
    assert report["widths"][0] == 1  # one group, not four inputs
    assert runs["emp"].inputs()["kept"] == ["pi_1"]
    assert report["exact"] is True
    assert all(c.get("units") in (None, "1") for c in report["constants"])
    # the pictures show the KAN of the groups: its input is pi_1, its output the label it learned
    from emp_kan.app.report import render_figures

    graphml = render_figures("emp", runs["emp"], problem)["graph.graphml"].decode()
    assert "pi_1" in graphml and "epsilon*r**2*y/q2**2" in graphml


def _newton_csv(path, n=300):
    rng = np.random.default_rng(0)
    m1, m2 = rng.uniform(1e23, 1e24, n), rng.uniform(1e22, 1e24, n)
    r = rng.uniform(1e6, 1e8, n)
    rows = np.column_stack([m1, m2, r, 6.674e-11 * m1 * m2 / r**2])
    np.savetxt(path, rows, delimiter=",", header="m1 [kg],m2 [kg],r [m],F [N]", comments="")


def test_newtons_law_from_a_csv_with_units_in_its_header_gives_g_with_its_units(tmp_path, capsys):
    _newton_csv(tmp_path / "newton.csv")
    out = tmp_path / "report"
    code = main(
        [
            "discover",
            "--csv",
            str(tmp_path / "newton.csv"),
            "--target",
            "F [N]",
            "--compare",
            "none",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["units"]["given"] == {"m1": "kg", "m2": "kg", "r": "m", "F": "N"}
    m1, m2, r = sp.symbols("m1 m2 r", real=True)
    found = sp.sympify(report["formula"], locals={"m1": m1, "m2": m2, "r": r})
    constant = sp.simplify(found / (m1 * m2 / r**2))
    assert constant.is_number and abs(float(constant) / 6.674e-11 - 1) < 1e-3
    assert [c["units"] for c in report["constants"]] == ["m^3/(kg*s^2)"]
    assert "m^3/(kg*s^2)" in capsys.readouterr().out


def test_a_unit_pint_cannot_read_is_a_one_line_usage_error(tmp_path, capsys):
    code = main(["discover", "--feynman", "9", "--units", "q1=Coul", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "cannot read the unit 'Coul'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_units_missing_for_a_column_are_named(tmp_path, capsys):
    code = main(["discover", "--feynman", "9", "--units", "q1=C", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "no unit given for 'q2', 'epsilon', 'r', 'y'" in capsys.readouterr().err


def test_the_estimator_takes_units_predicts_through_the_groups_and_saves_them(tmp_path):
    import pandas as pd

    from emp_kan import EMPKANRegressor

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.uniform(1, 3, size=(300, 4)), columns=["q1", "q2", "epsilon", "r"])
    y = frame.q1 * frame.q2 / (4 * np.pi * frame.epsilon * frame.r**2)
    units = {"q1": "C", "q2": "C", "epsilon": "F/m", "r": "m", "y": "N"}
    est = EMPKANRegressor(steps=30, rounds=2, units=units).fit(frame, y)
    assert est.groups_.describe()["groups"] == {"pi_1": "q1/q2"}
    assert est.model_.width_in[0] == 1
    assert est.score(frame, y) > 0.99  # the KAN of the group, times the normaliser
    est.save(tmp_path / "est.pt")
    loaded = EMPKANRegressor.load(tmp_path / "est.pt")
    assert loaded.groups_ == est.groups_
    np.testing.assert_allclose(loaded.predict(frame), est.predict(frame))
    with pytest.raises(ValueError, match="no unit given for 'q2'"):
        EMPKANRegressor(units={"q1": "C"}).fit(frame, y)
    with pytest.raises(ValueError, match="units must be None or a dict"):
        EMPKANRegressor(units="q1=C").fit(frame, y)
