"""Specification of the round loop on real (tiny) pykan models."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random

import numpy as np
import pytest
import torch

from emp_kan._runtime import threads
from emp_kan.kan import _pykan, adapter
from emp_kan.kan.training import train
from emp_kan.pruning.pruners import EMPPruner, ThresholdPruner
from emp_kan.pruning.rounds import prune_rounds
from emp_kan.pruning.schedule import Schedule
from emp_kan.pruning.step import prune_step
from tests.conftest import make_dataset


def alive_edges_in_original_ids(result) -> set[tuple[int, int, int]]:
    alive = set()
    for layer, mask in enumerate(adapter.get_edge_masks(result.model)):
        for o, i in zip(*np.nonzero(mask.numpy()), strict=True):
            alive.add((layer, result.node_ids[layer + 1][o], result.node_ids[layer][i]))
    return alive


def rng_snapshot():
    return (
        random.getstate(),
        np.random.get_state()[1].tolist(),  # noqa: NPY002
        torch.random.get_rng_state().tolist(),
    )


@pytest.mark.parametrize("pruner", [EMPPruner(target="both"), ThresholdPruner()])
def test_full_loop_writes_no_file_and_keeps_global_rng(tmp_path, monkeypatch, dataset, pruner):
    monkeypatch.chdir(tmp_path)
    model = adapter.make_kan([3, 4, 1], grid=3, k=3, seed=1)
    before = rng_snapshot()
    result = prune_rounds(
        model, dataset, pruner, rounds=2, steps=2, lamb=1e-2, schedule=Schedule(tol=10.0)
    )
    adapter.clone_model(result.model)
    assert rng_snapshot() == before
    assert os.listdir(tmp_path) == []


def test_pruning_prints_nothing(capsys, dataset, trained):
    prune_rounds(
        trained,
        dataset,
        EMPPruner(),
        rounds=1,
        steps=1,
        initial_steps=0,
        schedule=Schedule(tol=10.0),
    )
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == ""


@pytest.mark.parametrize("target", ["edges", "both"])
def test_removed_edges_never_come_back(dataset, trained, target):
    result = prune_rounds(
        trained,
        dataset,
        EMPPruner(target=target),
        rounds=3,
        steps=2,
        initial_steps=0,
        schedule=Schedule(tol=100.0),
    )
    assert len(result.history) >= 2
    alive = {
        (layer, o, i)
        for layer, (n_out, n_in) in enumerate([(4, 3), (1, 4)])
        for o in range(n_out)
        for i in range(n_in)
    }
    for record in result.history:
        removed = {tuple(e) for e in record.removed_edges}
        if record.accepted:
            assert removed <= alive  # only edges alive before this round can be removed
            alive -= removed
    assert alive_edges_in_original_ids(result) == alive
    for layer, rounds in enumerate(result.edge_pruned_round):
        for o, i in zip(*np.nonzero(rounds >= 0), strict=True):
            assert (layer, o, i) not in alive


def test_grid_update_crashes_without_compaction_and_not_with_it(dataset, trained):
    broken = adapter.clone_model(trained)
    masks = [m.numpy() for m in adapter.get_edge_masks(broken)]
    masks[0][1, :] = False  # hidden node 1 loses every input: a constant node
    adapter.set_edge_masks(broken, masks)
    # pykan itself crashes on the constant node at its next grid update ...
    with pytest.raises(UnboundLocalError, match="coef"):
        with threads.preserved_global_rng(0), contextlib.redirect_stdout(io.StringIO()):
            broken.fit(dataset, steps=12, lamb=1e-2)
    # ... our training refuses it up front, naming the node ...
    with pytest.raises(ValueError, match=r"hidden nodes \[\(1, 1\)\]"):
        adapter.fit(adapter.clone_model(broken), dataset, steps=12, lamb=1e-2, seed=0)
    # ... and compaction removes it, after which training runs.

    class CutNodeOne(EMPPruner):
        def keep_edges(self, edge_scores, alive):
            keep = [a.copy() for a in alive]
            keep[0][1, :] = False
            return keep, []

    step = prune_step(trained, dataset["train_input"], CutNodeOne(target="edges"))
    assert adapter.widths(step.model) == [3, 3, 1]
    assert [1, 1] in step.removed_nodes
    adapter.fit(step.model, dataset, steps=12, lamb=1e-2, seed=0)
    assert math.isfinite(adapter.rmse(step.model, dataset["test_input"], dataset["test_label"]))


def test_output_is_never_cut_off(dataset, trained):
    class CutEverything(EMPPruner):
        def keep_edges(self, edge_scores, alive):
            return [np.zeros_like(a) for a in alive], []

    step = prune_step(trained, dataset["train_input"], CutEverything())
    assert step.warnings and "strongest path" in step.warnings[0]
    assert adapter.widths(step.model) == [3, 1, 1]
    assert sum(int(m.sum()) for m in adapter.get_edge_masks(step.model)) == 2


def test_rejected_attempts_back_off_and_keep_the_last_accepted_model(dataset, trained):
    # tol = floor = 0: every attempt that retrains to a worse validation RMSE is rejected.
    strict = Schedule(tol=0.0, floor=0.0, max_rungs=4)
    result = prune_rounds(
        trained,
        dataset,
        EMPPruner(beta=0.05, target="both"),
        rounds=3,
        steps=1,
        initial_steps=0,
        schedule=strict,
    )
    rejected = [r for r in result.history if r.status.startswith("rejected")]
    assert rejected, "the strict rule must reject something"
    for r in rejected:
        assert not r.accepted and r.val_rmse_after_retrain > r.accept_below
    # Each rejection is retried on the next rung in the same round: nodes only and edges only
    # at the same beta, then both at beta x 1.5, ...
    rungs = [(r.round, r.rung) for r in result.history]
    assert rungs[:4] == [(1, 0), (1, 1), (1, 2), (1, 3)]
    pruners = [r.pruner for r in result.history[:4]]
    assert "target='both'" in pruners[0] and "beta=0.05," in pruners[0]
    assert "target='nodes'" in pruners[1] and "beta=0.05," in pruners[1]
    assert "target='edges'" in pruners[2] and "beta=0.05," in pruners[2]
    assert "target='both'" in pruners[3] and "beta=0.07500000000000001" in pruners[3]
    if all(not r.accepted for r in result.history):
        assert adapter.widths(result.model) == [3, 4, 1] and result.edges_alive == 16
        assert (result.edge_pruned_round[0] == -1).all()
    assert result.stop_reason.startswith(("fixed point", "budget"))
    assert result.rejected_attempts == len(rejected)
    # An attempt that removes what a rejected one removed is skipped, not retrained.
    for r in result.history:
        if r.status.startswith("skipped"):
            assert math.isnan(r.val_rmse_after_retrain) and r.seconds_train == 0.0


def test_nan_loss_is_rejected(monkeypatch, dataset, trained):
    real_fit = adapter.fit

    def fit_then_diverge(model, dataset_, steps, *args, **kwargs):
        real_fit(model, dataset_, steps, *args, **kwargs)
        if steps > 0:
            model.act_fun[0].coef.data[:] = float("nan")

    monkeypatch.setattr(adapter, "fit", fit_then_diverge)
    result = prune_rounds(
        trained,
        dataset,
        EMPPruner(),
        rounds=2,
        steps=1,
        initial_steps=0,
        schedule=Schedule(max_rungs=1),
    )
    assert result.history[0].status.startswith("rejected")
    assert math.isfinite(adapter.rmse(result.model, dataset["test_input"], dataset["test_label"]))


def test_loop_runs_to_a_fixed_point_not_to_the_round_cap(dataset, trained):
    lenient = Schedule(tol=100.0)  # everything is accepted: the loop ends when nothing goes
    result = prune_rounds(
        trained, dataset, EMPPruner(), rounds=50, steps=1, initial_steps=0, schedule=lenient
    )
    assert result.stop_reason.startswith("fixed point")
    last = result.history[-1]
    assert last.status.startswith("fixed point") and not last.removed_edges
    assert all(r.accepted for r in result.history[:-1])
    assert sum(r.accepted for r in result.history) < 50


def test_test_rows_never_reach_a_decision(dataset, trained):
    """Same training rows, different test labels: every decision and mask is identical."""
    noisy = dict(dataset)
    noisy["test_label"] = (
        torch.randn(dataset["test_label"].shape, generator=torch.Generator().manual_seed(5)) * 10
    )

    def run(data):
        r = prune_rounds(
            trained,
            data,
            EMPPruner(),
            rounds=3,
            steps=2,
            initial_steps=0,
            schedule=Schedule(tol=0.3, max_rungs=1),
        )
        decisions = [
            (h.accepted, h.rung, h.removed_edges, h.removed_nodes, h.val_rmse_after_retrain)
            for h in r.history
        ]
        return decisions, [m.numpy() for m in adapter.get_edge_masks(r.model)], r

    d1, m1, r1 = run(dataset)
    d2, m2, r2 = run(noisy)
    assert d1 == d2
    assert all((a == b).all() for a, b in zip(m1, m2, strict=True))
    assert r1.final_test_rmse != r2.final_test_rmse  # the test rows are reported ...
    assert r1.final_val_rmse == r2.final_val_rmse  # ... and the validation rows decide


def test_validation_rows_do_decide(dataset, trained):
    """Changing only the last 20% of the training labels (the validation rows) changes the
    accept limit: the decisions are taken on them."""
    shifted = dict(dataset)
    y = dataset["train_label"].clone()
    n = y.shape[0]
    y[n - n // 5 :] += 3.0
    shifted["train_label"] = y
    a = prune_rounds(trained, dataset, EMPPruner(), rounds=1, steps=1, initial_steps=0)
    b = prune_rounds(trained, shifted, EMPPruner(), rounds=1, steps=1, initial_steps=0)
    assert a.initial_val_rmse < b.initial_val_rmse and a.accept_below < b.accept_below
    assert a.initial_test_rmse == b.initial_test_rmse


def test_same_seed_gives_identical_masks_and_history(dataset):
    model = adapter.make_kan([3, 4, 1], grid=3, k=3, seed=3)

    def run():
        r = prune_rounds(
            model, dataset, EMPPruner(target="both"), rounds=2, steps=2, schedule=Schedule(tol=10.0)
        )
        d = r.to_dict()
        for rec in d["history"]:
            for key in ("seconds_train", "seconds_score", "seconds_prune"):
                rec.pop(key)
        d.pop("seconds_initial_train")
        d.pop("seconds_final_train")
        return d, [m.numpy() for m in adapter.get_edge_masks(r.model)]

    (h1, m1), (h2, m2) = run(), run()
    assert h1 == h2
    assert all((a == b).all() for a, b in zip(m1, m2, strict=True))


def test_history_round_trips_through_json(dataset, trained):
    result = prune_rounds(
        trained,
        dataset,
        EMPPruner(),
        rounds=2,
        steps=1,
        initial_steps=0,
        schedule=Schedule(tol=10.0),
    )
    assert result.final_test_rmse == pytest.approx(
        adapter.rmse(result.model, dataset["test_input"], dataset["test_label"])
    )
    text = result.to_json()
    assert json.loads(text) == result.to_dict()
    rec = json.loads(text)["history"][0]
    for key in (
        "layers",
        "train_rmse_before",
        "test_rmse_after_prune",
        "edges_alive",
        "nodes_alive",
        "seconds_train",
        "seconds_score",
        "seconds_prune",
    ):
        assert key in rec
    layer = rec["layers"][0]
    assert set(layer) == {
        "kind",
        "layer",
        "alive_before",
        "n_eff",
        "kept",
        "preserved_mass",
        "mass_bound",
    }
    assert layer["preserved_mass"] >= layer["mass_bound"] - 1e-12


def test_threshold_pruner_matches_pykan_prune(tmp_path, monkeypatch, dataset, trained):
    monkeypatch.chdir(tmp_path)
    ours = prune_step(trained, dataset["train_input"], ThresholdPruner())
    theirs = adapter.clone_model(trained)
    adapter.forward_pass(theirs, dataset["train_input"])
    # pykan's prune() turns checkpointing back on half-way; give it a folder of its own.
    (tmp_path / "ckpt").mkdir()
    theirs.ckpt_path = str(tmp_path / "ckpt")
    with threads.preserved_global_rng(), _pykan.quiet_pykan():
        pruned = theirs.prune()
    assert adapter.widths(pruned) == [len(ids) for ids in ours.node_ids_before_compaction]
    for a, b in zip(adapter.get_edge_masks(pruned), ours.masks_before_compaction, strict=True):
        assert a.numpy().tolist() == b.tolist()


def test_train_leaves_the_given_model_untouched(dataset):
    model = adapter.make_kan([3, 2, 1], grid=3, k=3, seed=0)
    coef = model.act_fun[0].coef.detach().clone()
    trained = train(model, dataset, steps=2, lamb=0.0)
    assert torch.equal(model.act_fun[0].coef, coef)
    assert not torch.equal(trained.act_fun[0].coef, coef)


# --- bad input ----------------------------------------------------------------------------


def _without(key):
    d = dict(make_dataset())
    d.pop(key)
    return d


def _with(key, value):
    d = dict(make_dataset())
    d[key] = value
    return d


@pytest.mark.parametrize(
    ("dataset_", "message"),
    [
        (_without("test_label"), "missing test_label"),
        (_with("train_label", torch.zeros(59, 1)), "60 rows but train_label has 59"),
        (_with("train_input", torch.full((60, 3), float("nan"))), "180 NaN or infinite"),
        (_with("train_input", torch.zeros(60, 2)), "different numbers of columns"),
        (_with("train_input", torch.zeros(60)), "2-D torch tensor"),
        ("not a dict", "must be a dict"),
    ],
)
def test_bad_dataset_raises_before_training(dataset_, message, trained):
    with pytest.raises(ValueError, match=None) as info:
        prune_rounds(trained, dataset_, EMPPruner())
    assert message in str(info.value)


def test_input_width_must_match_the_model():
    model = adapter.make_kan([2, 3, 1], grid=3, k=3, seed=0)
    with pytest.raises(ValueError, match="takes 2 inputs but the dataset has 3"):
        prune_rounds(model, make_dataset(), EMPPruner())


def test_non_pykan_model_is_a_type_error(dataset):
    with pytest.raises(TypeError, match="expected a pykan model"):
        prune_rounds(torch.nn.Linear(3, 1), dataset, EMPPruner())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rounds": -1}, "rounds must be a whole number >= 0"),
        ({"steps": -2}, "steps must be a whole number >= 0"),
        ({"initial_steps": 1.5}, "initial_steps must be a whole number >= 0"),
        ({"lamb": float("nan")}, "lamb must be a finite number >= 0"),
    ],
)
def test_bad_loop_settings_raise(kwargs, message, dataset, trained):
    with pytest.raises(ValueError, match=None) as info:
        prune_rounds(trained, dataset, EMPPruner(), **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EMPPruner(target="splines"), "target must be one of"),
        (lambda: EMPPruner(scope="net"), "scope must be one of"),
        (lambda: EMPPruner(edge_score="magic"), "unknown edge_score 'magic'"),
        (lambda: EMPPruner(node_score="magic"), "unknown node_score 'magic'"),
        (lambda: EMPPruner(beta=0), "beta must be a positive finite number"),
        (lambda: ThresholdPruner(edge_th=-1), "edge_th must be a finite number >= 0"),
    ],
)
def test_bad_pruner_settings_raise(make, message):
    with pytest.raises(ValueError, match=None) as info:
        make()
    assert message in str(info.value)


def test_global_scope_ranks_all_layers_in_one_pool(dataset, trained):
    step = prune_step(trained, dataset["train_input"], EMPPruner(scope="global", target="edges"))
    assert len(step.decisions) == 1
    decision = step.decisions[0]
    assert decision.layer == -1 and decision.alive_before == 16
    kept = sum(int(m.sum()) for m in step.masks_before_compaction)
    assert kept == decision.kept


def test_per_layer_edge_emp_keeps_nu_per_layer(dataset, trained):
    step = prune_step(
        trained, dataset["train_input"], EMPPruner(target="edges", edge_score="coefficient")
    )
    assert [d.layer for d in step.decisions] == [0, 1]
    for d, mask in zip(step.decisions, step.masks_before_compaction, strict=True):
        assert int(mask.sum()) == d.kept
        assert d.preserved_mass >= d.mass_bound - 1e-12


def test_prune_once_is_one_shot_and_leaves_the_model_alone(trained, dataset):
    import emp_kan
    from emp_kan.kan import adapter

    before = {k: v.clone() for k, v in trained.state_dict().items()}
    step = emp_kan.prune_once(
        trained, dataset["train_input"], emp_kan.EMPPruner(target="nodes", beta=1.0)
    )
    (decision,) = step.decisions
    assert step.hidden == [decision.kept] == [int(decision.n_eff)]  # floor(beta * N_eff)
    assert adapter.widths(trained)[1] == 4  # the trained model keeps its 4 hidden nodes
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in before.items())
