"""One pruning step: score the model, let the pruner choose, remove what it drops (edges by
mask, dead hidden nodes structurally) and say what went."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emp_kan._runtime import threads
from emp_kan.kan import adapter
from emp_kan.kan.scores import compute_scores
from emp_kan.kan.topology import live_nodes, restore_cut_outputs
from emp_kan.pruning.pruners import EMPPruner, LayerDecision, ThresholdPruner

log = logging.getLogger("emp_kan")

__all__ = ["StepOutcome", "prune_once", "prune_step"]


@dataclass
class StepOutcome:
    """The result of :func:`prune_step` (or :func:`prune_once`) on one model state:
    ``model`` (the pruned copy), its ``node_ids``, the per-layer EMP ``decisions`` and what
    was removed."""

    model: Any
    node_ids: list[list[int]]
    decisions: list[LayerDecision]
    removed_edges: list[list[int]]
    removed_nodes: list[list[int]]
    warnings: list[str]
    masks_before_compaction: list[np.ndarray]
    node_ids_before_compaction: list[list[int]]
    seconds_score: float

    @property
    def hidden(self) -> list[int]:
        """Hidden nodes per hidden layer of the pruned model."""
        return adapter.widths(self.model)[1:-1]


@threads.single_threaded
def prune_once(model: Any, x: torch.Tensor, pruner: EMPPruner | ThresholdPruner) -> StepOutcome:
    """Prune ``model`` once, with no retraining: the EMP paper's one-shot recipe.

    Parameters
    ----------
    model : kan.MultKAN
        A trained model; not changed.
    x : torch.Tensor, ``(batch, w_0)``
        The inputs the scores are computed on (the training inputs).
    pruner : EMPPruner or ThresholdPruner
        E.g. ``EMPPruner(target="nodes", beta=1.0)`` for one-shot node EMP per hidden layer.

    Returns
    -------
    StepOutcome
        ``.model`` is the pruned copy, ``.hidden`` its hidden widths, ``.decisions`` the EMP
        arithmetic per layer (N_eff, kept, preserved mass, bound).
    """
    adapter.check_model(model)
    return prune_step(model, x, pruner)


def _drop_hidden_nodes(model, node_ids, keep_hidden, removed_nodes, removed_edges):
    """Remove hidden nodes structurally; record them and their live edges in original ids.

    ``keep_hidden[h]`` is the bool keep mask of hidden layer ``h + 1``. Returns the new model
    and its node ids.
    """
    if all(k.all() for k in keep_hidden):
        return model, node_ids
    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    for h, keep in enumerate(keep_hidden):
        for i in np.flatnonzero(~keep):
            removed_nodes.append([h + 1, node_ids[h + 1][i]])
            for o in np.flatnonzero(masks[h + 1][:, i]):
                removed_edges.append([h + 1, node_ids[h + 2][o], node_ids[h + 1][i]])
            for j in np.flatnonzero(masks[h][i, :]):
                removed_edges.append([h, node_ids[h + 1][i], node_ids[h][j]])
    model = adapter.remove_nodes(model, [np.flatnonzero(k) for k in keep_hidden])
    kept_ids = [
        [ids[i] for i in np.flatnonzero(k)]
        for ids, k in zip(node_ids[1:-1], keep_hidden, strict=True)
    ]
    return model, [node_ids[0], *kept_ids, node_ids[-1]]


def _strongest_nodes(keep: list[np.ndarray], scores: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for k, s in zip(keep, scores, strict=True):
        k = k.copy()
        if not k.any():
            k[int(np.argmax(np.abs(s)))] = True
        out.append(k)
    return out


def prune_step(
    model: Any,
    x: torch.Tensor,
    pruner: EMPPruner | ThresholdPruner,
    node_ids: list[list[int]] | None = None,
) -> StepOutcome:
    """Score, prune and compact once. ``model`` itself is not changed.

    Nodes are pruned first (when the pruner targets them), then the smaller model is re-scored
    and its edges pruned (when targeted). Finally every hidden node that lost all its live
    inputs or outputs is removed, and no output is ever left without a path from an input.

    Parameters
    ----------
    model : kan.MultKAN
    x : torch.Tensor, ``(batch, w_0)``
        The inputs scores are computed on (the training inputs).
    pruner : EMPPruner or ThresholdPruner
    node_ids : list of list of int, optional
        Original ids of the model's nodes, per layer; defaults to ``0..w_l-1``.
    """
    model = adapter.clone_model(model)
    if node_ids is None:
        node_ids = [list(range(w)) for w in adapter.widths(model)]
    decisions: list[LayerDecision] = []
    removed_edges: list[list[int]] = []
    removed_nodes: list[list[int]] = []
    warnings: list[str] = []
    seconds_score = 0.0

    def timed_scores():
        nonlocal seconds_score
        t = time.perf_counter()
        out = compute_scores(model, x, pruner.edge_score, pruner.node_score)
        seconds_score += time.perf_counter() - t
        return out

    if pruner.prunes_nodes and len(adapter.widths(model)) > 2:
        scores = timed_scores()
        keep, dec = pruner.keep_nodes(scores.nodes)
        decisions += dec
        if any(not k.any() for k in keep):
            warnings.append("a node rule would empty a hidden layer; kept its strongest node")
            keep = _strongest_nodes(keep, scores.nodes)
        model, node_ids = _drop_hidden_nodes(model, node_ids, keep, removed_nodes, removed_edges)

    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    if pruner.prunes_edges:
        scores = timed_scores()
        new_masks, dec = pruner.keep_edges(scores.edges, masks)
        decisions += dec
        new_masks, warn = restore_cut_outputs(new_masks, masks, scores.edges)
        warnings += warn
        for layer, (old, new) in enumerate(zip(masks, new_masks, strict=True)):
            for o, i in zip(*np.nonzero(old & ~new), strict=True):
                removed_edges.append([layer, node_ids[layer + 1][o], node_ids[layer][i]])
        adapter.set_edge_masks(model, new_masks)
        masks = new_masks
    masks_before = [m.copy() for m in masks]
    ids_before = [list(ids) for ids in node_ids]

    live = live_nodes(masks)
    model, node_ids = _drop_hidden_nodes(model, node_ids, live[1:-1], removed_nodes, removed_edges)
    for w in warnings:
        log.warning(w)
    return StepOutcome(
        model=model,
        node_ids=node_ids,
        decisions=decisions,
        removed_edges=removed_edges,
        removed_nodes=removed_nodes,
        warnings=warnings,
        masks_before_compaction=masks_before,
        node_ids_before_compaction=ids_before,
        seconds_score=seconds_score,
    )
