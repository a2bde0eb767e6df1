"""Pure graph checks on per-layer edge masks (each ``(out, in)``, bool).

A KAN with layer widths ``w_0..w_L`` has ``L`` edge masks; ``masks[l]`` connects layer ``l``
(columns) to layer ``l + 1`` (rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["live_nodes", "restore_cut_outputs"]


def _reach_forward(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    reach = [np.ones(masks[0].shape[1], dtype=bool)]
    for m in masks:
        reach.append(np.asarray(m, dtype=bool)[:, reach[-1]].any(axis=1))
    return reach


def _reach_backward(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    reach = [np.ones(masks[-1].shape[0], dtype=bool)]
    for m in reversed(masks):
        reach.append(np.asarray(m, dtype=bool)[reach[-1], :].any(axis=0))
    return list(reversed(reach))


def live_nodes(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Which nodes lie on a live path from some input to some output.

    Inputs and outputs always count as live (they are never removed structurally); a hidden
    node is live when it has a live path from an input and a live path to an output.

    Parameters
    ----------
    masks : sequence of bool ndarray, ``masks[l]`` of shape ``(w_{l+1}, w_l)``

    Returns
    -------
    list of bool ndarray, one ``(w_l,)`` array per layer, ``l = 0..L``
    """
    fwd, bwd = _reach_forward(masks), _reach_backward(masks)
    live = [f & b for f, b in zip(fwd, bwd, strict=True)]
    live[0][:] = True
    live[-1][:] = True
    return live


def restore_cut_outputs(
    masks: Sequence[np.ndarray],
    previous: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
) -> tuple[list[np.ndarray], list[str]]:
    """Reconnect every output that ``masks`` cut off from all inputs.

    For each such output, the path through ``previous`` (the masks before this pruning step)
    with the largest total edge score is switched back on. Nothing that ``previous`` had
    removed comes back.

    Parameters
    ----------
    masks, previous : sequence of bool ndarray, ``(w_{l+1}, w_l)`` per layer
    scores : sequence of float ndarray, same shapes

    Returns
    -------
    masks : list of bool ndarray
        A copy of ``masks`` with the restored paths.
    warnings : list of str
        One message per restored output.
    """
    out = [np.array(m, dtype=bool, copy=True) for m in masks]
    reach_out = _reach_forward(out)[-1]
    warnings: list[str] = []
    if reach_out.all():
        return out, warnings
    prev = [np.asarray(p, dtype=bool) for p in previous]
    # best[l][j]: the highest score sum of a previous-alive path from an input to node j.
    best = [np.zeros(prev[0].shape[1])]
    choice: list[np.ndarray] = []
    for p, s in zip(prev, scores, strict=True):
        total = np.where(p, np.abs(np.asarray(s, dtype=float)) + best[-1][None, :], -np.inf)
        choice.append(np.argmax(total, axis=1))
        best.append(total.max(axis=1))
    for o in np.flatnonzero(~reach_out):
        if not np.isfinite(best[-1][o]):
            warnings.append(f"output {o} had no live path before this step either")
            continue
        node = o
        path = []
        for layer in range(len(prev) - 1, -1, -1):
            src = int(choice[layer][node])
            out[layer][node, src] = True
            path.append((layer, node, src))
            node = src
        warnings.append(
            f"pruning would cut output {o} off from every input; kept its strongest path "
            + " <- ".join(f"L{layer}:{i}<-{j}" for layer, i, j in path)
        )
    return out, warnings
