"""Scores: every named option and user callables, in the (out, in) orientation."""

from __future__ import annotations

import numpy as np
import pytest

from emp_kan.kan import adapter
from emp_kan.kan.scores import EDGE_SCORES, NODE_SCORES, compute_scores, node_scores_from_edges
from emp_kan.kan.topology import live_nodes, restore_cut_outputs
from emp_kan.pruning.pruners import EMPPruner
from emp_kan.pruning.step import prune_step


@pytest.mark.parametrize("edge_score", EDGE_SCORES)
@pytest.mark.parametrize("node_score", NODE_SCORES)
def test_named_scores_have_the_documented_shapes(trained, dataset, edge_score, node_score):
    scores = compute_scores(trained, dataset["train_input"], edge_score, node_score)
    assert [e.shape for e in scores.edges] == [(4, 3), (1, 4)]
    assert [n.shape for n in scores.nodes] == [(4,)]
    assert all(np.isfinite(e).all() and (e >= 0).all() for e in scores.edges)


def test_dead_edges_score_zero(trained, dataset):
    model = adapter.clone_model(trained)
    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    masks[0][2, 1] = False
    adapter.set_edge_masks(model, masks)
    for name in EDGE_SCORES:
        assert compute_scores(model, dataset["train_input"], name).edges[0][2, 1] == 0.0


def test_attribution_matches_pykan_edge_scores(trained, dataset):
    model = adapter.clone_model(trained)
    ours = compute_scores(model, dataset["train_input"]).edges
    adapter.forward_pass(model, dataset["train_input"])
    model.attribute()
    for a, b in zip(ours, model.edge_scores, strict=True):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-6)


def test_user_callables_are_used(trained, dataset):
    def edges(model, x):
        return [np.arange(12.0).reshape(4, 3), np.ones((1, 4))]

    def nodes(model, x):
        return [np.array([4.0, 3.0, 2.0, 1.0])]

    scores = compute_scores(trained, dataset["train_input"], edges, nodes)
    assert scores.edges[0][3, 2] == 11.0
    assert scores.nodes[0].tolist() == [4.0, 3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="expected"):
        compute_scores(trained, dataset["train_input"], lambda m, x: [np.ones(3)])
    # The pruner ranks by the callables, not by pykan's attribution: node scores 4, 3, 2, 1
    # give N_eff = 100/30 = 3.33, so EMP keeps nodes 0-2 and drops node 3.
    outcome = prune_step(
        trained,
        dataset["train_input"],
        EMPPruner(target="nodes", edge_score=edges, node_score=nodes),
    )
    assert outcome.removed_nodes == [[1, 3]]
    assert adapter.widths(outcome.model) == [3, 3, 1]


def test_node_scores_from_edges_take_max_in_and_max_out():
    edges = [np.array([[1.0, 5.0], [2.0, 0.5]]), np.array([[3.0, 0.1]])]
    assert node_scores_from_edges(edges, "min")[0].tolist() == [3.0, 0.1]
    assert node_scores_from_edges(edges, "max")[0].tolist() == [5.0, 2.0]


def test_live_nodes_need_a_path_in_and_out():
    masks = [np.array([[1, 0], [0, 0], [1, 1]], bool), np.array([[1, 1, 0]], bool)]
    live = live_nodes(masks)
    assert live[1].tolist() == [True, False, False]  # node 1: no input; node 2: no output
    assert live[0].all() and live[2].all()


def test_restore_keeps_the_strongest_previously_alive_path():
    prev = [np.ones((2, 2), bool), np.ones((1, 2), bool)]
    scores = [np.array([[0.1, 0.2], [0.9, 0.3]]), np.array([[0.2, 0.5]])]
    cut = [np.zeros((2, 2), bool), np.zeros((1, 2), bool)]
    restored, warnings = restore_cut_outputs(cut, prev, scores)
    assert restored[1].tolist() == [[False, True]]
    assert restored[0].tolist() == [[False, False], [True, False]]
    assert len(warnings) == 1
