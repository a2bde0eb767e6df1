"""The additive structure of a pruned KAN: its output as a sum of pieces, each a function of the
inputs that feed it.

A KAN's output node adds the edges that reach it. Grouping the last hidden layer's nodes whose
inputs overlap gives pieces with disjoint inputs: ``y = c + g_1(x_A) + g_2(x_B) + ...``, so the
inputs of different pieces are additively separable. A piece of one input is every chain from
that input to the output collapsed into one 1-D function; it is evaluated through the network
itself, so it carries whatever the splines learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emp_kan.kan import adapter

__all__ = [
    "Piece",
    "additive_pieces",
    "elasticities",
    "network_gradients",
    "piece_values",
    "split_separable",
]


@dataclass(frozen=True)
class Piece:
    """One additive piece of a one-output KAN.

    Attributes
    ----------
    inputs : tuple of int
        The input columns the piece depends on.
    nodes : tuple of int
        The nodes of the layer before the output whose edges into the output make the piece
        (the inputs themselves for a KAN without a hidden layer).
    held : tuple of int
        Inputs that feed ``nodes`` but enter the network's function of them additively
        (:func:`split_separable`): held at a reference value, they leave the piece its own
        inputs' part.
    """

    inputs: tuple[int, ...]
    nodes: tuple[int, ...]
    held: tuple[int, ...] = ()

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        return {
            "inputs": [str(names[i]) for i in self.inputs],
            "nodes": list(self.nodes),
            "shares_nodes": bool(self.held),
        }


def _supports(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``support[l] (w_l, w_0)``: which inputs reach each node of layer ``l`` by live edges."""
    supports = [np.eye(masks[0].shape[1], dtype=bool)]
    for mask in masks:
        reached = np.asarray(mask, dtype=np.int64) @ supports[-1].astype(np.int64)
        supports.append(reached > 0)
    return supports


def additive_pieces(masks: Sequence[np.ndarray]) -> list[Piece]:
    """The pieces of output 0 of a KAN with live-edge ``masks`` (``masks[l]`` of shape
    ``(w_{l+1}, w_l)``), ordered by their first input.

    Nodes of the last hidden layer that share an input belong to one piece; a node no input
    reaches contributes a constant and belongs to none.
    """
    supports = _supports(masks)
    last = np.asarray(masks[-1], dtype=bool)[0]  # edges into output 0, (w_{L-1},)
    support = supports[-2]  # (w_{L-1}, w_0)
    groups: list[tuple[set[int], set[int]]] = []  # (inputs, nodes)
    for node in np.flatnonzero(last):
        inputs = set(np.flatnonzero(support[node]).tolist())
        if not inputs:
            continue
        merged_inputs, merged_nodes = set(inputs), {int(node)}
        rest = []
        for group_inputs, group_nodes in groups:
            if group_inputs & merged_inputs:
                merged_inputs |= group_inputs
                merged_nodes |= group_nodes
            else:
                rest.append((group_inputs, group_nodes))
        groups = [*rest, (merged_inputs, merged_nodes)]
    pieces = [Piece(tuple(sorted(i)), tuple(sorted(n))) for i, n in groups]
    return sorted(pieces, key=lambda p: p.inputs)


def piece_values(
    model: Any, x: torch.Tensor, pieces: Sequence[Piece], reference: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each piece's contribution to output 0 on ``x (n, w_0)``, and the rest (the constant).

    Computed in float64 through the network with only the piece's edges into the output
    switched on, less the output with none on: the output node's affine map is linear, so the
    pieces and the constant add up to the network's output. A piece's ``held`` inputs are set
    to ``reference (w_0,)`` and the piece is measured from its value there.

    Returns
    -------
    values : ndarray, ``(n, len(pieces))``
    constant : ndarray, ``(n,)``
        The output with every edge into it off (constant in ``x``).
    """
    masks = [m.detach().cpu().numpy().copy() for m in adapter.get_edge_masks(model)]
    work = adapter.clone_model(model)

    def output(last: np.ndarray, rows: torch.Tensor) -> np.ndarray:
        adapter.set_edge_masks(work, [*masks[:-1], last])
        return adapter.forward_float64(work, rows)[:, 0].numpy()

    off = np.zeros_like(masks[-1])
    constant = output(off, x)
    values = np.empty((x.shape[0], len(pieces)))
    for k, piece in enumerate(pieces):
        on = off.copy()
        on[0, list(piece.nodes)] = masks[-1][0, list(piece.nodes)]
        if not piece.held:
            values[:, k] = output(on, x) - constant
            continue
        held = list(piece.held)
        rows = x.clone().double()
        rows[:, held] = torch.as_tensor(reference[held], dtype=torch.float64)
        at_reference = torch.as_tensor(reference, dtype=torch.float64)[None, :]
        values[:, k] = output(on, rows) - output(on, at_reference)[0]
    return values, constant


def split_separable(
    model: Any, x: torch.Tensor, pieces: Sequence[Piece], tolerance: float = 1e-2
) -> tuple[list[Piece], np.ndarray]:
    """``pieces`` with every input that enters its piece additively split off as a piece of
    its own, and the reference point the split pieces are measured from (the inputs' medians
    on ``x``).

    Input ``i`` of a piece ``g`` is additively separable from the rest ``R`` when
    ``g(x_i, x_R) + g(x'_i, x'_R) - g(x'_i, x_R) - g(x_i, x'_R)`` vanishes for pairs of rows
    ``x, x'`` (AI Feynman's test): here when its RMS over ``x``'s rows paired with the same
    rows rolled by half is below ``tolerance`` of the piece's spread.
    """
    rows = x.double()
    reference = rows.median(dim=0).values.numpy()
    partner = torch.roll(rows, rows.shape[0] // 2, dims=0)
    out: list[Piece] = []
    for piece in pieces:
        rest = list(piece.inputs)
        split_off: list[int] = []
        for column in piece.inputs:
            if len(rest) < 2:
                break
            others = [c for c in rest if c != column]
            whole = Piece(tuple(rest), piece.nodes, tuple(sorted(split_off)))
            swapped_i, swapped_rest = rows.clone(), rows.clone()
            swapped_i[:, column] = partner[:, column]
            swapped_rest[:, others] = partner[:, others]
            values = [
                piece_values(model, z, [whole], reference)[0][:, 0]
                for z in (rows, partner, swapped_i, swapped_rest)
            ]
            interaction = values[0] + values[1] - values[2] - values[3]
            spread = float(np.std(values[0]))
            if spread > 0 and float(np.sqrt(np.mean(interaction**2))) <= tolerance * spread:
                rest = others
                split_off.append(column)
        held_for = {c: tuple(sorted(set(piece.inputs) - {c})) for c in split_off}
        out += [Piece((c,), piece.nodes, held_for[c]) for c in split_off]
        out.append(Piece(tuple(rest), piece.nodes, tuple(sorted(split_off))))
    return sorted(out, key=lambda p: p.inputs), reference


def network_gradients(
    model: Any, x: torch.Tensor, inputs: Sequence[int], relative_step: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """The gradient of output 0 of ``model`` with respect to each of ``inputs``, at every row
    of ``x (n, w_0)``, by central differences in float64 through the network, and the output
    itself (one batch).

    Returns
    -------
    gradients : ndarray, ``(n, len(inputs))``
        The step for column ``i`` is ``relative_step`` times its spread on ``x`` (or 1).
    values : ndarray, ``(n,)``
    """
    rows = x.detach().double()
    n = rows.shape[0]
    batches, steps = [rows], []
    for column in inputs:
        spread = float(rows[:, column].std()) if n > 1 else 0.0
        step = relative_step * (spread if spread > 0 else 1.0)
        for sign in (1.0, -1.0):
            moved = rows.clone()
            moved[:, column] += sign * step
            batches.append(moved)
        steps.append(step)
    out = adapter.forward_float64(model, torch.cat(batches))[:, 0].numpy()
    values, moved = out[:n], out[n:].reshape(-1, 2, n)
    gradients = (moved[:, 0] - moved[:, 1]) / (2 * np.array(steps).reshape(-1, 1))
    return gradients.T.reshape(n, len(steps)), values


_NEAR_ZERO = 0.1  # rows whose predicted |y| is below this share of its median are left out


def elasticities(
    model: Any, x: torch.Tensor, inputs: Sequence[int], inputs_logged: bool, label_logged: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``d log|y| / d log|x_i|`` of the network's output 0 for each of ``inputs``, at the rows
    of ``x (n, w_0)`` (the network's inputs: ``log|x|`` when ``inputs_logged``; its output
    ``log|y|`` when ``label_logged``), and a weight per row.

    Returns
    -------
    values : ndarray, ``(m, len(inputs))``
    weights : ndarray, ``(m,)``
        With ``label_logged`` every row, weighted alike. Without, the rows where the network's
        ``|y|`` is at least a tenth of its median (``m <= n``), weighted by
        ``(|y| / (|y| + median|y|))**2``: near a zero of ``y`` the ratio ``x * y' / y``
        magnifies the splines' errors.
    """
    gradients, y = network_gradients(model, x, inputs)
    if not inputs_logged:
        gradients = gradients * x[:, list(inputs)].detach().double().numpy()
    if label_logged:
        return gradients, np.ones(len(gradients))
    size = np.abs(y)
    median = float(np.median(size))
    keep = size >= _NEAR_ZERO * median
    return gradients[keep] / y[keep, None], (size[keep] / (size[keep] + median)) ** 2
