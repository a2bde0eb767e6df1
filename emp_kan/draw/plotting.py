"""Pictures of a KAN graph, a pruning history and a score vector.

matplotlib is imported inside each function; nothing is shown or saved: every function returns
its Axes or Figure for the caller to show or ``savefig``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from emp_kan.core import emp_select

__all__ = ["plot_graph", "plot_history", "plot_scores"]

_ALIVE = "#1f4e79"
_PRUNED = "#b0b0b0"
_SYMBOLIC = "#b3541e"


def _layout(graph) -> dict[str, tuple[float, float]]:
    """Layered positions: layer l at height l, nodes of a layer spread evenly over [0, 1]."""
    by_layer: dict[int, list[str]] = {}
    for node, data in graph.nodes(data=True):
        by_layer.setdefault(int(data["layer"]), []).append(node)
    pos = {}
    for layer, nodes in by_layer.items():
        nodes.sort(key=lambda n: int(graph.nodes[n]["index"]))
        for k, node in enumerate(nodes):
            pos[node] = ((k + 0.5) / len(nodes), float(layer))
    return pos


_INSET_W, _INSET_H = 0.07, 0.22


def _free_spot(placed, start, end, ts=(0.3, 0.5, 0.7), size=(_INSET_W, _INSET_H)):
    """A box on the edge start->end (at the fractions ``ts``) clear of the ``placed`` boxes."""
    w, h = size
    for t in ts:
        cx = start[0] + t * (end[0] - start[0])
        cy = start[1] + t * (end[1] - start[1])
        box = (cx - w / 2, cy - h / 2, w, h)
        if all(
            box[0] + w < b[0] or b[0] + b[2] < box[0] or box[1] + h < b[1] or b[1] + b[3] < box[1]
            for b in placed
        ):
            return box
    return None


def plot_graph(
    graph,
    ax=None,
    *,
    show_pruned: bool = True,
    symbolic_labels: bool = True,
    curves: Mapping[tuple[str, str], tuple[Any, Any]] | None = None,
    title: str | None = None,
    pieces: Sequence[str] | None = None,
):
    """Draw a KAN graph from :func:`emp_kan.to_networkx`, inputs at the bottom.

    Parameters
    ----------
    graph : networkx.DiGraph
    ax : matplotlib Axes, optional
        Drawn into a new figure when omitted.
    show_pruned : bool
        Draw pruned edges and nodes faint and dashed (True) or leave them out.
    symbolic_labels : bool
        Write each edge's symbolic function (LaTeX where known) next to it; edges carrying
        under 5% of the top score, and labels that would overlap others, go without.
    curves : mapping, optional
        ``{(u, v): (inputs, outputs)}`` from :func:`emp_kan.graph.edge_curves`: each surviving
        edge's learned curve is drawn as a small inset on it (edges carrying under 5% of the
        top score, and insets that would overlap others, are left without one).
    title : str, optional
    pieces : sequence of str, optional
        One label per additive piece (``"x: x**4/2 - 2*x**2"``): nodes whose ``piece``
        attribute is ``k`` (see :func:`emp_kan.draw.graph.mark_pieces`) are filled with the
        k-th colour and a legend names the pieces (a white marker: the piece has no node of its
        own, it was split off a shared node).

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        n_layers = 1 + max(int(d["layer"]) for _, d in graph.nodes(data=True))
        widest = max(
            sum(1 for _, d in graph.nodes(data=True) if int(d["layer"]) == layer)
            for layer in range(n_layers)
        )
        _, ax = plt.subplots(figsize=(max(5.0, 0.9 * widest + 2), 1.9 * n_layers + 0.8))
    pos = _layout(graph)
    _draw_edges(ax, graph, pos, show_pruned, symbolic_labels, curves)
    last = _draw_nodes(ax, graph, pos, show_pruned, bool(pieces))
    if pieces:
        coloured = {int(d["piece"]) for _, d in graph.nodes(data=True) if "piece" in d}
        handles = [
            ax.scatter(
                [],
                [],
                s=140,
                c=_piece_colour(k) if k in coloured else "white",  # white: on a shared node
                edgecolors="black",
                label=label,
            )
            for k, label in enumerate(pieces, start=1)
        ]
        ax.legend(
            handles=handles,
            title="additive pieces",
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=8,
            title_fontsize=8,
            frameon=False,
        )
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.6, last + 0.5)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)
    return ax


def _draw_edges(ax, graph, pos, show_pruned: bool, symbolic_labels: bool, curves) -> None:
    """The graph's edges: pruned ones faint and dashed, live ones by score, with their
    symbolic labels and curve insets where they fit."""
    placed: list[tuple[float, float, float, float]] = []  # curve insets
    labels: list[tuple[float, float, float, float]] = []  # symbolic labels
    alive_scores = [float(d["score"]) for *_, d in graph.edges(data=True) if d["alive"]]
    top = max(alive_scores, default=1.0) or 1.0

    for u, v, d in graph.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        if not d["alive"]:
            if show_pruned:
                ax.plot(
                    [x0, x1], [y0, y1], color=_PRUNED, lw=0.7, ls=(0, (3, 3)), alpha=0.6, zorder=1
                )
            continue
        share = min(1.0, max(0.0, float(d["score"]) / top))
        color = _SYMBOLIC if "function" in d else _ALIVE
        ax.plot(
            [x0, x1],
            [y0, y1],
            color=color,
            lw=0.8 + 3.2 * share,
            alpha=0.35 + 0.65 * share,
            solid_capstyle="round",
            zorder=2,
        )
        if symbolic_labels and "function" in d and d["function"] != "0" and share >= 0.05:
            spot = _free_spot(labels, (x0, y0), (x1, y1), ts=(0.72, 0.6, 0.84), size=(0.09, 0.12))
            if spot is not None:
                labels.append(spot)
                text = f"${d['latex']}$" if d.get("latex") else str(d["function"])
                ax.text(
                    spot[0] + spot[2] / 2,
                    spot[1] + spot[3] / 2,
                    text,
                    fontsize=10,
                    color=_SYMBOLIC,
                    ha="center",
                    va="center",
                    zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
                )
        if curves is not None and (u, v) in curves and share >= 0.05:
            box = _free_spot(placed, (x0, y0), (x1, y1))
            if box is not None:
                placed.append(box)
                xs, ys = curves[(u, v)]
                inset = ax.inset_axes(list(box), transform=ax.transData, zorder=3)
                inset.plot(np.asarray(xs), np.asarray(ys), color=color, lw=1.0)
                inset.set_xticks([])
                inset.set_yticks([])
                for spine in inset.spines.values():
                    spine.set_linewidth(0.4)


def _piece_colour(k: int) -> Any:
    import matplotlib.colors as mcolors

    rgb = np.array(mcolors.to_rgb(f"C{(k - 1) % 10}"))
    return [tuple(0.45 * rgb + 0.55)]  # pale: the node's outline and labels stay readable


def _draw_nodes(ax, graph, pos, show_pruned: bool, pieces: bool = False) -> int:
    """The graph's nodes (with ``pieces``, filled by their additive piece), the inputs' and
    the output's labels; returns the last layer."""
    last = max(int(d["layer"]) for _, d in graph.nodes(data=True))
    n_inputs = sum(1 for _, d in graph.nodes(data=True) if int(d["layer"]) == 0)
    label_size = 10 if n_inputs <= 6 else 8
    for node, d in graph.nodes(data=True):
        x, y = pos[node]
        if not d["alive"] and not show_pruned:
            continue
        face = "white" if d["alive"] else "#eeeeee"
        if pieces and d["alive"] and "piece" in d:
            face = _piece_colour(int(d["piece"]))
        edge = "black" if d["alive"] else _PRUNED
        ax.scatter(
            [x],
            [y],
            s=140,
            c=face,
            edgecolors=edge,
            linewidths=1.2,
            zorder=5,
            linestyle="-" if d["alive"] else "--",
        )
        layer = int(d["layer"])
        if layer == 0:
            ax.text(
                x,
                y - 0.2,
                d["label"],
                ha="center",
                va="top",
                fontsize=label_size,
                rotation=0 if n_inputs <= 8 else 30,
            )
        elif layer == last:
            ax.text(x, y + 0.18, d["label"], ha="center", va="bottom", fontsize=10)
    return last


def _records(history: Any) -> list[dict]:
    if hasattr(history, "history"):
        history = history.history
    if isinstance(history, Mapping) and "history" in history:
        history = history["history"]
    out = []
    for r in history:
        out.append(r if isinstance(r, Mapping) else vars(r))
    return out


def _unpruned_state(history: Any) -> dict[str, Any] | None:
    """Edges, hidden nodes and validation RMSE before the first attempt, when known."""
    if hasattr(history, "to_dict"):
        history = history.to_dict()
    if not isinstance(history, Mapping) or "initial_widths" not in history:
        return None
    widths = [int(w) for w in history["initial_widths"]]
    rmse = history.get("initial_val_rmse")
    return {
        "edges": sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True)),
        "nodes": sum(widths[1:-1]),
        "val_rmse": None if rmse is None or not np.isfinite(rmse) else float(rmse),
    }


def plot_history(history: Any):
    """Per attempt: N_eff and kept per layer, what is alive, and the validation losses.

    Parameters
    ----------
    history : PruneResult, list of RoundRecord, or the dict of ``PruneResult.to_dict()``

    Returns
    -------
    matplotlib.figure.Figure
        Three panels over the attempts of the round loop. Rejected attempts (rolled back, then
        retried on a gentler rung) are shaded red and labelled with their rung; the dotted line
        in the loss panel is the accept limit. The alive counts are those of the model the loop
        kept after each attempt; attempt 0 is the unpruned model (drawn when ``history`` is a
        PruneResult or its dict, which know it).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    records = _records(history)
    if not records:
        raise ValueError("the history is empty: run at least one round before plotting it")
    start = _unpruned_state(history)
    fig, (ax_n, ax_e, ax_l) = plt.subplots(1, 3, figsize=(13, 3.6))
    xs_all = [int(r.get("attempt") or k + 1) for k, r in enumerate(records)]
    _plot_effective_numbers(ax_n, xs_all, records)
    _plot_alive(ax_e, xs_all, records, start)
    _plot_losses(ax_l, xs_all, records, start)
    _mark_attempts((ax_n, ax_e, ax_l), xs_all, records)
    ticks = ([0] if start else []) + xs_all
    tick_labels = (["0\nunpruned"] if start else []) + [str(x) for x in xs_all]
    for ax in (ax_n, ax_e, ax_l):
        ax.set_xlabel("attempt")
        ax.set_xticks(ticks, tick_labels)
        ax.set_xlim(min(ticks) - 0.6, max(ticks) + 0.6)
    for ax in (ax_n, ax_e):  # counts: no 1.25 edges
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def _plot_effective_numbers(ax: Any, xs_all: list[int], records: list[dict]) -> None:
    """N_eff and the kept count of each layer (and kind) over the attempts."""
    groups: dict[tuple[str, int], list[tuple[int, float, int]]] = {}
    for x, r in zip(xs_all, records, strict=True):
        for d in r["layers"]:
            groups.setdefault((d["kind"], int(d["layer"])), []).append(
                (x, float(d["n_eff"]), int(d["kept"]))
            )
    for k, ((kind, layer), rows) in enumerate(sorted(groups.items())):
        color = f"C{k % 10}"
        name = f"{kind} L{layer}" if layer >= 0 else f"{kind} (global)"
        xs = [row[0] for row in rows]
        ax.plot(xs, [row[1] for row in rows], "o-", color=color, label=f"N_eff {name}")
        ax.plot(xs, [row[2] for row in rows], "s--", color=color, alpha=0.7, label=f"kept {name}")
    ax.set_title("effective number and kept count")
    if groups:
        ax.legend(fontsize=7)


def _plot_alive(ax: Any, xs_all: list[int], records: list[dict], start: dict | None) -> None:
    """Edges and hidden nodes alive after each attempt (attempt 0: the unpruned model)."""
    xs_alive = ([0] if start else []) + xs_all
    for key, counts, marker, color, label in (
        ("edges", "edges_alive", "o-", _ALIVE, "edges"),
        ("nodes", "nodes_alive", "s-", "C2", "hidden nodes"),
    ):
        ys = ([start[key]] if start else []) + [int(r[counts]) for r in records]
        ax.plot(xs_alive, ys, marker, color=color, label=label)
    ax.set_title("alive after the attempt")
    ax.legend(fontsize=8)


def _plot_losses(ax: Any, xs_all: list[int], records: list[dict], start: dict | None) -> None:
    """Validation RMSE before, right after pruning and after retraining; the accept limit."""

    def series(key, fallback):
        key = key if key in records[0] else fallback
        return [np.nan if r.get(key) is None else float(r[key]) for r in records]

    if start and start["val_rmse"] is not None:
        ax.plot([0], [start["val_rmse"]], "D", color="0.2", label="unpruned")
    for when, marker, label in (
        ("before", "o-", "before"),
        ("after_prune", "x--", "right after pruning"),
        ("after_retrain", "s-", "after retraining"),
    ):
        ax.plot(xs_all, series(f"val_rmse_{when}", f"test_rmse_{when}"), marker, label=label)
    limits = series("accept_below", "accept_below") if "accept_below" in records[0] else []
    if limits and np.isfinite(limits).any():
        ax.plot(xs_all, limits, ":", color="darkred", label="accept limit")
    ax.set_yscale("log")
    ax.set_title("validation RMSE" if "val_rmse_before" in records[0] else "test RMSE")


def _mark_attempts(axes: tuple, xs_all: list[int], records: list[dict]) -> None:
    """Shade the rejected attempts red (with their rung) and label the fixed point."""
    ax_l = axes[-1]
    for x, r in zip(xs_all, records, strict=True):
        status = str(r.get("status", ""))
        if status.startswith(("rejected", "rolled back")):
            for ax in axes:
                ax.axvspan(x - 0.4, x + 0.4, color="red", alpha=0.12)
            text, color = f"rejected\nrung {r.get('rung', 0)}", "darkred"
        elif status.startswith("fixed point"):
            text, color = "fixed\npoint", "0.3"
        else:
            continue
        ax_l.annotate(
            text,
            (x, 0.97),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="top",
            fontsize=7,
            color=color,
        )
    ax_l.legend(fontsize=7)


def plot_scores(
    scores: Any,
    beta: float = 1.0,
    *,
    alive: Any = None,
    ax=None,
    signed: str = "abs",
):
    """Sorted weights with the EMP cut at nu, annotated with N_eff, s_eff and the mass bound.

    Parameters
    ----------
    scores : array_like, any shape
    beta : float
    alive : bool mask of the scores' shape, optional
    ax : matplotlib Axes, optional
    signed : {"abs", "shift"}

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    sel = emp_select(scores, beta, alive=alive, signed=signed)
    flat = np.asarray(scores.detach().cpu() if hasattr(scores, "detach") else scores, dtype=float)
    flat = flat.ravel()
    if alive is not None:
        flat = flat[np.asarray(alive, dtype=bool).ravel()]
    weights = np.abs(flat) if signed == "abs" else flat - flat.min()
    total = weights.sum()
    weights = weights / total if total > 0 else np.full_like(weights, 1.0 / weights.size)
    ordered: Sequence[float] = np.sort(weights)[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    ranks = np.arange(1, len(ordered) + 1)
    kept = ranks <= sel.kept
    ax.bar(ranks[kept], np.asarray(ordered)[kept], color=_ALIVE, label=f"kept (nu = {sel.kept})")
    ax.bar(
        ranks[~kept],
        np.asarray(ordered)[~kept],
        color=_PRUNED,
        label=f"pruned ({int((~kept).sum())})",
    )
    ax.axvline(sel.kept + 0.5, color="black", lw=1, ls="--")
    bound = "" if sel.mass_bound is None else f"\nmass bound = {sel.mass_bound:.3f}"
    ax.text(
        0.97,
        0.95,
        f"N_eff = {sel.n_eff:.2f} of N = {sel.n_alive}\ns_eff = {sel.preserved_mass:.3f}{bound}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=9,
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"},
    )
    ax.set_xlabel("rank")
    ax.set_ylabel("weight |s| / sum |s|")
    ax.set_title(f"EMP cut (beta = {beta:g})")
    ax.legend(loc="center right", fontsize=8)
    return ax
