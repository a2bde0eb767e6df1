"""Pruning rules: scores and alive masks in, keep masks out. No pykan, no state.

Each pruner answers two questions, for the round loop to ask in turn:

* ``keep_nodes(node_scores)``: which hidden nodes survive (one bool array per hidden layer);
* ``keep_edges(edge_scores, alive)``: which edges survive (one ``(out, in)`` array per layer),
  never reviving an edge that ``alive`` marks dead.

Both also return one :class:`LayerDecision` per ranked group, for the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from emp_kan._runtime.checks import check_finite_nonneg
from emp_kan.core import BETA, effective_number, emp_select, preserved_mass
from emp_kan.kan.scores import EdgeScore, NodeScore, check_score_names
from emp_kan.pruning.targets import SCOPES, TARGETS

Target = Literal["edges", "nodes", "both"]
Scope = Literal["layer", "global"]

__all__ = ["EMPPruner", "LayerDecision", "ThresholdPruner"]


@dataclass(frozen=True)
class LayerDecision:
    """What a pruner decided for one group of components.

    ``layer`` is the layer index (edges: the layer of edge masks; nodes: the hidden layer's
    index in the width list), or -1 for a global ranking across layers. ``mass_bound`` is None
    where no bound applies (threshold rules, or beta < 1).
    """

    kind: str
    layer: int
    alive_before: int
    n_eff: float
    kept: int
    preserved_mass: float
    mass_bound: float | None


def _check_choice(name: str, value: str, options: Sequence[str]) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")


class EMPPruner:
    """Effective Model Pruning: keep the top ``floor(beta * N_eff)`` of each group.

    Parameters
    ----------
    target : {"edges", "nodes", "both"}
        What to prune. With "both", nodes are pruned first, then edges are re-scored and pruned.
    scope : {"layer", "global"}
        Rank each layer on its own, or all layers in one pool.
    beta : float
        Scale on ``N_eff``; 1 is the paper's recommendation.
    signed : {"abs", "shift"}
        How scores become weights (see :mod:`emp_kan.core`).
    edge_score, node_score : str or callable
        See :mod:`emp_kan.kan.scores`.
    """

    name = "emp"

    def __init__(
        self,
        target: Target = "both",
        scope: Scope = "layer",
        beta: float = 1.0,
        signed: Literal["abs", "shift"] = "abs",
        edge_score: EdgeScore = "attribution",
        node_score: NodeScore = "attribution",
    ) -> None:
        _check_choice("target", target, TARGETS)
        _check_choice("scope", scope, SCOPES)
        _check_choice("signed", signed, ("abs", "shift"))
        check_score_names(edge_score, node_score)
        self.target = target
        self.scope = scope
        self.beta = BETA.check("beta", beta)
        self.signed = signed
        self.edge_score = edge_score
        self.node_score = node_score

    def __repr__(self) -> str:
        return (
            f"EMPPruner(target={self.target!r}, scope={self.scope!r}, beta={self.beta!r}, "
            f"signed={self.signed!r}, edge_score={self.edge_score!r}, "
            f"node_score={self.node_score!r})"
        )

    def backed_off(self, factor: float, target: Target | None = None) -> EMPPruner:
        """A gentler EMP: the same rule with ``beta * factor`` (and ``target``, if given)."""
        return EMPPruner(
            target=target or self.target,
            scope=self.scope,
            beta=self.beta * factor,
            signed=self.signed,
            edge_score=self.edge_score,
            node_score=self.node_score,
        )

    @property
    def prunes_nodes(self) -> bool:
        return self.target in ("nodes", "both")

    @property
    def prunes_edges(self) -> bool:
        return self.target in ("edges", "both")

    def _select(
        self, kind: str, scores: Sequence[np.ndarray], alive: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], list[LayerDecision]]:
        groups = (
            [(-1, list(range(len(scores))))]
            if self.scope == "global"
            else [(i, [i]) for i in range(len(scores))]
        )
        keep = [np.zeros(np.shape(a), dtype=bool) for a in alive]
        decisions = []
        for label, members in groups:
            flat_s = np.concatenate([np.ravel(scores[i]) for i in members])
            flat_a = np.concatenate([np.ravel(alive[i]) for i in members]).astype(bool)
            if not flat_a.any():
                continue
            sel = emp_select(flat_s, self.beta, alive=flat_a, signed=self.signed)
            start = 0
            for i in members:
                size = int(np.size(alive[i]))
                keep[i] = sel.mask[start : start + size].reshape(np.shape(alive[i]))
                start += size
            decisions.append(
                LayerDecision(
                    kind=kind,
                    layer=label if label < 0 or kind == "edges" else label + 1,
                    alive_before=sel.n_alive,
                    n_eff=sel.n_eff,
                    kept=sel.kept,
                    preserved_mass=sel.preserved_mass,
                    mass_bound=sel.mass_bound if self.beta >= 1.0 else None,
                )
            )
        return keep, decisions

    def keep_nodes(
        self, node_scores: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], list[LayerDecision]]:
        """Keep masks for the hidden nodes, one ``(width,)`` bool array per hidden layer."""
        alive = [np.ones(np.shape(s), dtype=bool) for s in node_scores]
        return self._select("nodes", node_scores, alive)

    def keep_edges(
        self, edge_scores: Sequence[np.ndarray], alive: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], list[LayerDecision]]:
        """Keep masks for the edges, one ``(out, in)`` bool array per layer."""
        return self._select("edges", edge_scores, alive)


class ThresholdPruner:
    """pykan's built-in rule: keep nodes scoring above ``node_th``, edges above ``edge_th``.

    With the default scores this makes the same decisions as pykan's ``model.prune()``:
    ``prune_node(node_th)``, then a fresh attribution, then ``prune_edge(edge_th)``.
    """

    name = "threshold"
    signed = "abs"

    def __init__(
        self,
        node_th: float = 1e-2,
        edge_th: float = 3e-2,
        target: Target = "both",
        edge_score: EdgeScore = "attribution",
        node_score: NodeScore = "attribution",
    ) -> None:
        node_th = check_finite_nonneg("node_th", node_th)
        edge_th = check_finite_nonneg("edge_th", edge_th)
        _check_choice("target", target, TARGETS)
        check_score_names(edge_score, node_score)
        self.node_th = float(node_th)
        self.edge_th = float(edge_th)
        self.target = target
        self.scope = "layer"
        self.edge_score = edge_score
        self.node_score = node_score

    def __repr__(self) -> str:
        return (
            f"ThresholdPruner(node_th={self.node_th!r}, edge_th={self.edge_th!r}, "
            f"target={self.target!r})"
        )

    def backed_off(self, factor: float, target: Target | None = None) -> ThresholdPruner:
        """A gentler rule: both thresholds divided by ``factor`` (and ``target``, if given)."""
        return ThresholdPruner(
            node_th=self.node_th / factor,
            edge_th=self.edge_th / factor,
            target=target or self.target,
            edge_score=self.edge_score,
            node_score=self.node_score,
        )

    prunes_nodes = EMPPruner.prunes_nodes
    prunes_edges = EMPPruner.prunes_edges

    @staticmethod
    def _decide(kind, layer, scores, alive, keep) -> LayerDecision:
        n_alive = int(np.count_nonzero(alive))
        return LayerDecision(
            kind=kind,
            layer=layer,
            alive_before=n_alive,
            n_eff=effective_number(scores, alive=alive),
            kept=int(np.count_nonzero(keep)),
            preserved_mass=preserved_mass(scores, keep, alive=alive),
            mass_bound=None,
        )

    def keep_nodes(
        self, node_scores: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], list[LayerDecision]]:
        """Nodes whose score exceeds ``node_th`` (strictly, as pykan does)."""
        keep, decisions = [], []
        for h, s in enumerate(node_scores):
            s = np.asarray(s, dtype=float)
            k = s > self.node_th
            keep.append(k)
            decisions.append(self._decide("nodes", h + 1, s, np.ones_like(k), k))
        return keep, decisions

    def keep_edges(
        self, edge_scores: Sequence[np.ndarray], alive: Sequence[np.ndarray]
    ) -> tuple[list[np.ndarray], list[LayerDecision]]:
        """Alive edges whose score exceeds ``edge_th``."""
        keep, decisions = [], []
        for layer, (s, a) in enumerate(zip(edge_scores, alive, strict=True)):
            s, a = np.asarray(s, dtype=float), np.asarray(a, dtype=bool)
            k = (s > self.edge_th) & a
            keep.append(k)
            if a.any():
                decisions.append(self._decide("edges", layer, s, a, k))
        return keep, decisions
