"""Importance scores of a pykan KAN's edges and hidden nodes.

Every edge score is a list with one ``(out, in)`` float array per layer; every node score a list
with one ``(width,)`` array per hidden layer (layer 1 to L-1). Scores are always computed after a
fresh forward pass on the inputs given (the training inputs, in the round loop).

Edge scores (``edge_score=``):

* ``"attribution"``: pykan's ``attribute()`` edge scores, roughly the share of output variation
  that flows through the edge. pykan's own pruning uses these.
* ``"activation"``: the KAN 1.0 L1 rule, std of the edge's output / (std of its input + 0.1).
* ``"coefficient"``: mean |scaled spline coefficient| (the EMP paper's KAN score); needs no data.
* a callable ``f(model, x) -> list of (out, in) arrays``.

Node scores (``node_score=``):

* ``"attribution"``: pykan's node scores;
* ``"min_in_out"``: min(max incoming, max outgoing) of the edge scores (the EMP authors' pykan
  prototype, with attribution edge scores);
* ``"max_in_out"``: max(max incoming, max outgoing) (the EMP paper's rule);
* a callable ``f(model, x) -> list of (width,) arrays``, hidden layers only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emp_kan.kan import adapter
from emp_kan.kan.score_names import EDGE_SCORES, NODE_SCORES

EdgeScore = str | Callable[[Any, torch.Tensor], Sequence[Any]]
NodeScore = str | Callable[[Any, torch.Tensor], Sequence[Any]]

__all__ = ["EDGE_SCORES", "NODE_SCORES", "KANScores", "compute_scores", "node_scores_from_edges"]


@dataclass(frozen=True)
class KANScores:
    """Scores of one model state.

    Attributes
    ----------
    edges : list of ndarray
        One ``(out, in)`` array per layer; dead edges score 0.
    nodes : list of ndarray
        One ``(width,)`` array per hidden layer.
    """

    edges: list[np.ndarray]
    nodes: list[np.ndarray]


def check_score_names(edge_score: EdgeScore, node_score: NodeScore) -> None:
    """Raise ValueError for an unknown score name, listing the valid ones."""
    if not callable(edge_score) and edge_score not in EDGE_SCORES:
        raise ValueError(
            f"unknown edge_score {edge_score!r}; use one of {', '.join(EDGE_SCORES)} or a callable"
        )
    if not callable(node_score) and node_score not in NODE_SCORES:
        raise ValueError(
            f"unknown node_score {node_score!r}; use one of {', '.join(NODE_SCORES)} or a callable"
        )


def node_scores_from_edges(edges: Sequence[np.ndarray], reduce: str = "min") -> list[np.ndarray]:
    """Hidden-node scores from edge scores: ``reduce(max incoming, max outgoing)``.

    Parameters
    ----------
    edges : sequence of ndarray, ``(w_{l+1}, w_l)`` per layer
    reduce : {"min", "max"}

    Returns
    -------
    list of ndarray, one ``(w_h,)`` array per hidden layer ``h = 1..L-1``
    """
    combine = {"min": np.minimum, "max": np.maximum}[reduce]
    out = []
    for h in range(1, len(edges)):
        incoming = np.abs(edges[h - 1]).max(axis=1)
        outgoing = np.abs(edges[h]).max(axis=0)
        out.append(combine(incoming, outgoing))
    return out


def _as_layer_list(values: Sequence[Any], shapes: Sequence[tuple[int, ...]], what: str):
    arrays = [
        np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, dtype=float) for v in values
    ]
    if [a.shape for a in arrays] != [tuple(s) for s in shapes]:
        raise ValueError(
            f"the {what} callable returned shapes {[a.shape for a in arrays]}, "
            f"expected {[tuple(s) for s in shapes]}"
        )
    return arrays


def compute_scores(
    model: Any,
    x: torch.Tensor,
    edge_score: EdgeScore = "attribution",
    node_score: NodeScore = "attribution",
) -> KANScores:
    """Edge and node scores of ``model`` after a fresh forward pass on ``x`` (``(batch, w_0)``)."""
    check_score_names(edge_score, node_score)
    w = adapter.widths(model)
    edge_shapes = [(w_out, w_in) for w_in, w_out in zip(w[:-1], w[1:], strict=True)]
    node_shapes = [(w[h],) for h in range(1, len(w) - 1)]
    if "attribution" in (edge_score, node_score):
        attr_edges, attr_nodes = adapter.attribution(model, x)
    else:
        adapter.forward_pass(model, x)
    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    if callable(edge_score):
        edges = _as_layer_list(edge_score(model, x), edge_shapes, "edge_score")
    elif edge_score == "attribution":
        edges = attr_edges
    elif edge_score == "activation":
        edges = adapter.activation_magnitude(model, x)
    else:
        edges = adapter.coefficient_magnitude(model)
    edges = [np.where(m, e, 0.0) for e, m in zip(edges, masks, strict=True)]
    if callable(node_score):
        nodes = _as_layer_list(node_score(model, x), node_shapes, "node_score")
    elif node_score == "attribution":
        nodes = attr_nodes[1:-1]
    else:
        nodes = node_scores_from_edges(edges, "min" if node_score == "min_in_out" else "max")
    return KANScores(edges=edges, nodes=nodes)
