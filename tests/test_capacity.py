"""Capacity escalation: a KAN too small for the law is replaced by a larger one only when the
validation rows say so, and every larger KAN tried is recorded."""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from emp_kan.data.problems import formula_problem
from emp_kan.data.split import Split
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.discover import discover
from emp_kan.kan import adapter
from emp_kan.kan.capacity import escalate, validation_rmse
from emp_kan.kan.training import train


def _product_rows() -> Split:
    """y = x0 * x1 on [-1, 1]^2: a [2, 1, 1] KAN cannot hold it (a product needs two hidden
    nodes, ((x0 + x1)^2 - (x0 - x1)^2) / 4)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 2, generator=gen) * 2 - 1
    y = x[:, [0]] * x[:, [1]]
    return Split.of(
        {"train_input": x, "train_label": y, "test_input": x[:20], "test_label": y[:20]}
    )


def _too_small(rows: Split):
    model = adapter.make_kan([2, 1, 1], grid=5, k=3, seed=0)
    return train(model, rows.fit, steps=20, lamb=0.0, seed=0)


def test_a_kan_too_small_for_the_law_is_replaced_by_a_wider_one():
    rows = _product_rows()
    small = _too_small(rows)
    before = validation_rmse(small, rows.validation)
    kept, steps = escalate(
        small, rows.fit, rows.validation, steps=20, lamb=0.0, seed=0, enough=0.0, budget=1
    )
    assert [s.change for s in steps] == ["hidden 1 -> 2"]
    assert steps[0].kept and steps[0].widths == [2, 2, 1]
    assert adapter.widths(kept) == [2, 2, 1]
    after = validation_rmse(kept, rows.validation)
    assert steps[0].val_rmse_before == before and steps[0].val_rmse_after == after
    assert after < 0.8 * before


def test_an_accurate_kan_or_no_budget_tries_nothing():
    rows = _product_rows()
    small = _too_small(rows)
    for enough, budget in ((math.inf, 3), (0.0, 0)):
        kept, steps = escalate(
            small,
            rows.fit,
            rows.validation,
            steps=20,
            lamb=0.0,
            seed=0,
            enough=enough,
            budget=budget,
        )
        assert kept is small and steps == []


def test_a_larger_kan_without_a_clear_gain_is_recorded_and_not_kept():
    rows = _product_rows()
    model = train(adapter.make_kan([2, 3, 1], grid=5, k=3, seed=0), rows.fit, steps=30, seed=0)
    # with enough=0 the whole ladder runs: every step is recorded, kept only on a clear gain
    kept, steps = escalate(
        model, rows.fit, rows.validation, steps=2, lamb=0.0, seed=0, enough=0.0, budget=3
    )
    assert [s.change.split()[0] for s in steps] == ["hidden", "layers", "grid"]
    best = validation_rmse(model, rows.validation)
    for step in steps:
        assert step.kept == (step.val_rmse_after < 0.8 * step.val_rmse_before)
        if step.kept:
            best = step.val_rmse_after
    assert validation_rmse(kept, rows.validation) == best


def test_a_finer_grid_starts_from_the_coarser_kan_s_curves():
    rows = _product_rows()
    model = train(adapter.make_kan([2, 3, 1], grid=5, k=3, seed=0), rows.fit, steps=30, seed=0)
    x = rows.fit["train_input"]
    finer = adapter.refine_grid(model, 10, x)
    assert int(finer.grid) == 10 and adapter.widths(finer) == [2, 3, 1]
    with torch.no_grad():
        gap = (adapter.forward_pass(finer, x) - adapter.forward_pass(model, x)).abs().max()
    assert float(gap) < 0.05 * float(rows.fit["train_label"].std())


def test_the_report_records_the_larger_kans_and_prunes_the_kept_one():
    problem = formula_problem("x*y", "x=-1:1,y=-1:1", samples=300)
    config = DiscoverConfig(
        hidden=(1,), grid=5, steps=20, round_steps=5, rounds=1, route="none", compare=False
    )
    report, _ = discover(problem, config)
    assert report["capacity"] and report["capacity"][0]["change"] == "hidden 1 -> 2"
    kept = [step for step in report["capacity"] if step["kept"]]
    assert kept, report["capacity"]
    assert report["edges"]["initial"] == sum(
        a * b for a, b in zip(kept[-1]["widths"][:-1], kept[-1]["widths"][1:], strict=True)
    )
    quiet, _ = discover(problem, replace(config, capacity=0))
    assert quiet["capacity"] == [] and quiet["edges"]["initial"] == 3
