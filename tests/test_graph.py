"""The KAN as a graph: counts and flags match the model, exports round-trip, plots draw."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from emp_kan.draw.graph import edge_curves, node_id, read_graph, to_networkx, write_graph  # noqa: E402
from emp_kan.draw.plotting import plot_graph, plot_history, plot_scores  # noqa: E402
from emp_kan.kan import adapter  # noqa: E402
from emp_kan.pruning.pruners import EMPPruner  # noqa: E402
from emp_kan.pruning.rounds import prune_rounds  # noqa: E402
from emp_kan.pruning.schedule import Schedule  # noqa: E402


@pytest.fixture(scope="module")
def pruned(dataset, trained):
    return prune_rounds(
        trained,
        dataset,
        EMPPruner(target="both"),
        rounds=2,
        steps=2,
        initial_steps=0,
        final_steps=0,
        schedule=Schedule(tol=100.0),
    )


def test_graph_matches_the_pruned_model_exactly(pruned, dataset):
    g = to_networkx(pruned, dataset["train_input"], variables=["a", "b", "c"], outputs=["f"])
    assert g.number_of_nodes() == 3 + 4 + 1
    assert g.number_of_edges() == 3 * 4 + 4 * 1
    alive_nodes = {node_id(layer, i) for layer, ids in enumerate(pruned.node_ids) for i in ids}
    assert {n for n, d in g.nodes(data=True) if d["alive"]} == alive_nodes
    expected_edges = set()
    for layer, mask in enumerate(adapter.get_edge_masks(pruned.model)):
        for o, i in zip(*np.nonzero(mask.numpy()), strict=True):
            expected_edges.add(
                (
                    node_id(layer, pruned.node_ids[layer][i]),
                    node_id(layer + 1, pruned.node_ids[layer + 1][o]),
                )
            )
    assert {(u, v) for u, v, d in g.edges(data=True) if d["alive"]} == expected_edges
    for _, _, d in g.edges(data=True):
        assert (d["pruned_round"] == -1) == d["alive"]
        assert d["score"] >= 0 and (d["score"] == 0 or d["alive"])
    assert [g.nodes[node_id(0, i)]["label"] for i in range(3)] == ["a", "b", "c"]
    assert g.nodes[node_id(2, 0)]["label"] == "f"


def test_graph_of_a_plain_model_has_everything_alive(trained):
    g = to_networkx(trained)
    assert all(d["alive"] for _, d in g.nodes(data=True))
    assert all(d["alive"] and d["pruned_round"] == -1 for *_, d in g.edges(data=True))


def test_symbolic_attributes_only_where_known(pruned):
    (layer, o, i) = next(
        (layer, pruned.node_ids[layer + 1][o], pruned.node_ids[layer][i])
        for layer, m in enumerate(adapter.get_edge_masks(pruned.model))
        for o, i in zip(*np.nonzero(m.numpy()), strict=True)
    )
    sym = {(layer, o, i): {"function": "sin", "latex": r"\sin(x)", "r2": 0.99}}
    g = to_networkx(pruned, symbolic=sym)
    with_fn = [(u, v) for u, v, d in g.edges(data=True) if "function" in d]
    assert with_fn == [(node_id(layer, i), node_id(layer + 1, o))]
    assert g.edges[with_fn[0]]["r2"] == 0.99


@pytest.mark.parametrize("suffix", [".graphml", ".json"])
def test_exports_round_trip_with_every_attribute(pruned, dataset, tmp_path, suffix):
    sym = {(0, pruned.node_ids[1][0], 0): {"function": "x^2", "latex": "x^{2}", "r2": 0.5}}
    g = to_networkx(pruned, dataset["train_input"], symbolic=sym)
    path = write_graph(g, tmp_path / f"kan{suffix}")
    back = read_graph(path)
    assert dict(back.nodes(data=True)) == dict(g.nodes(data=True))
    assert {(u, v): d for u, v, d in back.edges(data=True)} == {
        (u, v): d for u, v, d in g.edges(data=True)
    }
    assert os.listdir(tmp_path) == [f"kan{suffix}"]


def test_unknown_export_format_is_refused(pruned, tmp_path):
    with pytest.raises(ValueError, match="use a .graphml or .json path"):
        write_graph(to_networkx(pruned), tmp_path / "kan.txt")


def _has_artists(ax) -> bool:
    return bool(ax.lines or ax.collections or ax.patches or ax.texts)


def test_plots_draw_and_write_no_file(pruned, dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = to_networkx(pruned, dataset["train_input"])
    ax = plot_graph(g, curves=edge_curves(pruned, dataset["train_input"]))
    assert _has_artists(ax) and ax.child_axes  # curve insets
    ax_hidden = plot_graph(g, show_pruned=False)
    assert len(ax_hidden.lines) < len(ax.lines)
    fig = plot_history(pruned)
    assert len(fig.axes) == 3 and all(_has_artists(a) for a in fig.axes)
    fig_json = plot_history(pruned.to_dict())
    assert len(fig_json.axes) == 3
    ax_s = plot_scores(np.array([5.0, 3.0, 1.0, 0.5, 0.1]))
    assert len(ax_s.patches) == 5 and ax_s.texts
    plt.close("all")
    assert os.listdir(tmp_path) == []


def test_a_single_edge_model_draws():
    model = adapter.make_kan([1, 1], grid=3, k=3, seed=0)
    g = to_networkx(model)
    assert g.number_of_edges() == 1
    ax = plot_graph(g)
    assert _has_artists(ax)
    plt.close("all")


def test_history_plot_needs_rounds():
    with pytest.raises(ValueError, match="history is empty"):
        plot_history([])


def test_variable_names_must_match_the_inputs(trained):
    with pytest.raises(ValueError, match="variables has 2 names but the model has 3"):
        to_networkx(trained, variables=["a", "b"])


def test_additive_pieces_colour_their_own_hidden_nodes_and_name_themselves(trained, dataset):
    from emp_kan.draw.graph import mark_pieces

    g = to_networkx(trained, dataset["train_input"], variables=["a", "b", "c"], outputs=["f"])
    hidden = [0, 1, 2, 3]  # the unpruned [3, 4, 1] KAN's hidden nodes
    structure = {
        "pieces": [
            {"inputs": ["a"], "nodes": [0]},
            {"inputs": ["b"], "nodes": [1]},
            {"inputs": ["c"], "nodes": [1]},  # split off node 1: a shared node is no piece's
        ]
    }
    mark_pieces(g, trained, structure)
    assert g.nodes[node_id(1, hidden[0])]["piece"] == 1
    assert "piece" not in g.nodes[node_id(1, hidden[1])]
    assert all("piece" not in d for n, d in g.nodes(data=True) if n != node_id(1, hidden[0]))
    ax = plot_graph(g, pieces=["a: sin(a)", "b: b**2", "c"])
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a: sin(a)", "b: b**2", "c"]
    plt.close(ax.figure)
    untouched = to_networkx(trained, dataset["train_input"])
    mark_pieces(untouched, trained, None)
    assert all("piece" not in d for _, d in untouched.nodes(data=True))
