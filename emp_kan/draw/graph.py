"""A KAN (pruned, possibly partly symbolic) as a networkx graph, and its exports.

Nodes are ``"L{layer}_N{index}"`` with the index in the *original* (unpruned) model, so the
graph of a pruning run shows every node and edge that ever existed, with ``alive`` flags and the
round each edge was pruned in. Every attribute is a scalar (str, int, float, bool), so GraphML
and node-link JSON round-trip exactly; attributes that are unknown are left out, not set to None.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from emp_kan._runtime.io import atomic_write_text
from emp_kan.kan import adapter
from emp_kan.kan.scores import compute_scores, node_scores_from_edges

__all__ = ["edge_curves", "mark_pieces", "node_id", "read_graph", "to_networkx", "write_graph"]


def node_id(layer: int, index: int) -> str:
    """The graph id of node ``index`` of ``layer``: ``"L{layer}_N{index}"``."""
    return f"L{layer}_N{index}"


def _unpack(source: Any) -> tuple[Any, list[int], list[list[int]], list[np.ndarray] | None]:
    """(model, original widths, node ids per layer, edge_pruned_round or None)."""
    if hasattr(source, "model") and hasattr(source, "node_ids"):
        return source.model, list(source.initial_widths), source.node_ids, source.edge_pruned_round
    adapter.check_model(source)
    w = adapter.widths(source)
    return source, w, [list(range(n)) for n in w], None


def _names(given: Sequence[str] | None, n: int, stem: str, what: str) -> list[str]:
    if given is None:
        return [f"{stem}{i}" for i in range(n)] if n > 1 or stem == "x" else [stem]
    given = [str(v) for v in given]
    if len(given) != n:
        raise ValueError(f"{what} has {len(given)} names but the model has {n}")
    return given


def to_networkx(
    source: Any,
    x: Any = None,
    *,
    variables: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    symbolic: Mapping[tuple[int, int, int], Mapping[str, Any]] | None = None,
    edge_score: str = "attribution",
) -> nx.DiGraph:
    """The KAN as a directed graph, inputs to outputs.

    Parameters
    ----------
    source : kan.MultKAN or PruneResult
        A model, or the result of :func:`emp_kan.prune_rounds` (then pruned nodes and edges are
        included with ``alive=False`` and the round they were pruned in).
    x : torch.Tensor ``(batch, w_0)``, optional
        Inputs for data-based scores. Without it, scores are the spline-coefficient magnitudes.
    variables, outputs : sequence of str, optional
        Labels of the input and output nodes (default ``x0, x1, ...`` and ``y``).
    symbolic : mapping, optional
        ``{(layer, out_id, in_id): {"function": str, "latex": str, "r2": float}}`` in original
        ids, for edges fitted symbolically (see the symbolic stage).
    edge_score : str
        Which score to attach when ``x`` is given (see :mod:`emp_kan.kan.scores`).

    Returns
    -------
    networkx.DiGraph
        Node attributes: ``layer, index, label, alive, score``. Edge attributes: ``layer, score,
        alive, pruned_round`` and, where known, ``function, latex, r2``.
    """

    model, widths0, node_ids, pruned_round = _unpack(source)
    names_in = _names(variables, widths0[0], "x", "variables")
    names_out = _names(outputs, widths0[-1], "y", "outputs")
    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    if x is not None:
        scores = compute_scores(model, x, edge_score, "attribution")
        edge_scores, hidden_scores = scores.edges, scores.nodes
    else:
        edge_scores = adapter.coefficient_magnitude(model)
        hidden_scores = node_scores_from_edges(edge_scores, "max")
    # the caller's fits win over pykan's own symbolic edges
    given = {key: info for key, info in (symbolic or {}).items() if info}
    symbolic = {**_pykan_symbolic(model, node_ids), **given}
    graph = nx.DiGraph(name="KAN", widths=" ".join(map(str, adapter.widths(model))))
    _add_nodes(graph, widths0, node_ids, (names_in, names_out), edge_scores, hidden_scores, masks)
    _add_edges(graph, widths0, node_ids, masks, edge_scores, pruned_round, symbolic)
    return graph


def mark_pieces(graph: nx.DiGraph, source: Any, structure: Mapping[str, Any] | None) -> None:
    """Give the last hidden layer's nodes of ``graph`` (from :func:`to_networkx` of ``source``)
    the number of the additive piece they belong to, ``piece = k`` (1, 2, ...), from a run's
    ``structure`` (``{"pieces": [{"nodes": [...], ...}, ...]}``, nodes indexed in the pruned
    model); nodes in no piece or in several (an input split off a shared node), and every node
    when ``structure`` is None, get no attribute."""
    if not structure:
        return
    _, widths0, node_ids, _ = _unpack(source)
    layer = len(widths0) - 2
    if layer < 1:
        return
    owners: dict[int, set[int]] = {}
    for k, piece in enumerate(structure.get("pieces", []), start=1):
        for position in piece.get("nodes", []):
            owners.setdefault(int(position), set()).add(k)
    for position, pieces in owners.items():
        if len(pieces) == 1:  # a node the split shares between pieces belongs to none
            graph.nodes[node_id(layer, node_ids[layer][position])]["piece"] = pieces.pop()


def _add_nodes(
    graph: nx.DiGraph,
    widths0: list[int],
    node_ids: list[list[int]],
    names: tuple[list[str], list[str]],
    edge_scores: list[np.ndarray],
    hidden_scores: list[np.ndarray],
    masks: list[np.ndarray],
) -> None:
    """Every node of the unpruned layout (original ids), alive or not, with its score."""
    last = len(widths0) - 1
    for layer, n in enumerate(widths0):
        current = {orig: pos for pos, orig in enumerate(node_ids[layer])}
        for i in range(n):
            label = names[0][i] if layer == 0 else names[1][i] if layer == last else f"h{i}"
            score = 0.0
            if 0 < layer < last and i in current:
                score = float(hidden_scores[layer - 1][current[i]])
            elif i in current:
                score = 1.0 if layer == last else _input_score(edge_scores[0], masks[0], current[i])
            graph.add_node(
                node_id(layer, i),
                layer=layer,
                index=i,
                label=label,
                alive=i in current,
                score=score,
            )


def _add_edges(
    graph: nx.DiGraph,
    widths0: list[int],
    node_ids: list[list[int]],
    masks: list[np.ndarray],
    edge_scores: list[np.ndarray],
    pruned_round: list[np.ndarray] | None,
    symbolic: Mapping[tuple[int, int, int], Mapping[str, Any]],
) -> None:
    """Every edge of the unpruned layout: alive, score, the round it went, its fitted function."""
    for layer in range(len(widths0) - 1):
        pos_out = {orig: pos for pos, orig in enumerate(node_ids[layer + 1])}
        pos_in = {orig: pos for pos, orig in enumerate(node_ids[layer])}
        for o in range(widths0[layer + 1]):
            for i in range(widths0[layer]):
                alive = o in pos_out and i in pos_in and bool(masks[layer][pos_out[o], pos_in[i]])
                attrs: dict[str, Any] = {
                    "layer": layer,
                    "alive": alive,
                    "score": float(edge_scores[layer][pos_out[o], pos_in[i]]) if alive else 0.0,
                }
                if pruned_round is not None:
                    attrs["pruned_round"] = -1 if alive else int(max(pruned_round[layer][o, i], 0))
                else:
                    attrs["pruned_round"] = -1 if alive else 0
                info = symbolic.get((layer, o, i))
                if info and alive:
                    attrs.update({k: _scalar(v) for k, v in info.items() if v is not None})
                graph.add_edge(node_id(layer, i), node_id(layer + 1, o), **attrs)


def _input_score(scores: np.ndarray, mask: np.ndarray, pos: int) -> float:
    col = np.where(mask[:, pos], scores[:, pos], 0.0)
    return float(col.max()) if col.size else 0.0


def _scalar(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _pykan_symbolic(model: Any, node_ids: list[list[int]]) -> dict:
    """Edges that pykan itself holds as symbolic functions (``fix_symbolic``), original ids."""
    out = {}
    for layer, sym in enumerate(model.symbolic_fun):
        mask = sym.mask.detach().numpy()  # (out, in)
        for o, i in zip(*np.nonzero(mask), strict=True):
            name = sym.funs_name[o][i]
            out[(layer, node_ids[layer + 1][o], node_ids[layer][i])] = {"function": str(name)}
    return out


def edge_curves(source: Any, x: Any, points: int = 64) -> dict[tuple[str, str], tuple]:
    """Each alive edge's learned curve on the range the data covers, for ``plot_graph(curves=)``.

    Returns ``{(u, v): (inputs, outputs)}`` keyed by graph edge, each a ``(points,)`` array.
    """
    import torch

    model, _, node_ids, _ = _unpack(source)
    adapter.forward_pass(model, x)
    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    curves = {}
    for layer in range(len(model.act_fun)):
        pre = model.spline_preacts[layer]  # (batch, out, in)
        post = model.spline_postacts[layer]
        for o, i in zip(*np.nonzero(masks[layer]), strict=True):
            xs, order = torch.sort(pre[:, o, i])
            ys = post[:, o, i][order]
            idx = np.linspace(0, len(xs) - 1, min(points, len(xs))).astype(int)
            key = (node_id(layer, node_ids[layer][i]), node_id(layer + 1, node_ids[layer + 1][o]))
            curves[key] = (xs[idx].numpy().copy(), ys[idx].numpy().copy())
    return curves


def write_graph(graph: nx.DiGraph, path: str | os.PathLike) -> Path:
    """Write ``graph`` to ``path`` (``.graphml`` or ``.json`` node-link), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".graphml":
        text = "\n".join(nx.generate_graphml(graph))
    elif suffix == ".json":
        text = json.dumps(nx.node_link_data(graph, edges="edges"), indent=1, allow_nan=False)
    else:
        raise ValueError(f"cannot tell the format of {str(path)!r}; use a .graphml or .json path")
    return atomic_write_text(path, text)


def read_graph(path: str | os.PathLike) -> nx.DiGraph:
    """Read a graph written by :func:`write_graph`."""
    path = Path(path)
    if path.suffix.lower() == ".graphml":
        return nx.read_graphml(path)
    if path.suffix.lower() == ".json":
        return nx.node_link_graph(json.loads(path.read_text()), edges="edges")
    raise ValueError(f"cannot tell the format of {str(path)!r}; use a .graphml or .json path")
