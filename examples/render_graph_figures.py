"""Render the graph, history and score pictures used in docs/graphs.md.

Run: ``.venv/bin/python examples/render_graph_figures.py [OUT_DIR]`` (default ``docs/img``).

Three models: a 2-input Feynman equation (I.12.1 ... entry 16, 0.5 k x^2), the 9-input
Feynman I.9.18 (entry 5), and a deeper [4, 4, 2, 1] net on a 4-input formula. Each is trained
briefly, pruned with EMP, turned into a formula, and drawn with curve insets and the symbolic
function of each edge.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import emp_kan  # noqa: E402
from emp_kan._runtime.threads import preserved_global_rng  # noqa: E402
from emp_kan.draw.graph import edge_curves, to_networkx  # noqa: E402
from emp_kan.draw.plotting import plot_graph, plot_history, plot_scores  # noqa: E402
from emp_kan.kan import adapter  # noqa: E402
from emp_kan.kan._pykan import quiet_pykan  # noqa: E402
from emp_kan.kan.scores import compute_scores  # noqa: E402
from emp_kan.pruning.schedule import Schedule  # noqa: E402


def feynman(number: int, n: int = 400):
    from kan.feynman import get_feynman_dataset
    from kan.utils import create_dataset

    symbols, _, f, ranges = get_feynman_dataset(number)
    names = [str(s) for s in (symbols if isinstance(symbols, (list, tuple)) else [symbols])]
    with preserved_global_rng(), quiet_pykan():
        data = create_dataset(f, n_var=len(names), ranges=ranges, train_num=n, test_num=n, seed=0)
    return data, names


def deep_dataset(n: int = 400):
    gen = torch.Generator().manual_seed(0)

    def split():
        x = torch.rand(n, 4, generator=gen) * 2 - 1
        y = torch.exp(torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2) + 0.0 * x[:, [2]]
        return x, y

    (a, b), (c, d) = split(), split()
    return {"train_input": a, "train_label": b, "test_input": c, "test_label": d}, [
        "x1",
        "x2",
        "x3",
        "x4",
    ]


def render(name: str, data, names, width, out: Path, steps: int = 30) -> None:
    model = emp_kan.make_kan(width, grid=5, k=3, seed=0)
    result = emp_kan.prune_rounds(
        model,
        data,
        emp_kan.EMPPruner(target="edges"),
        rounds=3,
        steps=steps,
        lamb=1e-3,
        schedule=Schedule(tol=0.5),
        initial_steps=2 * steps,
        final_steps=2 * steps,
    )
    x = data["train_input"]
    formula = emp_kan.fit_formula(result, data, variables=names)
    graph = to_networkx(result, x, variables=names, symbolic=formula.graph_attributes())
    shown = f"${formula.latex()}$" if len(formula.latex()) <= 90 else "(long formula: see log)"
    ax = plot_graph(graph, curves=edge_curves(result, x), title=f"{name}: EMP-pruned KAN\n{shown}")
    ax.figure.savefig(out / f"graph_{name}.png", dpi=90, bbox_inches="tight")
    fig = plot_history(result)
    fig.savefig(out / f"history_{name}.png", dpi=80, bbox_inches="tight")
    first_layer = compute_scores(model, x).edges[0]
    ax = plot_scores(first_layer)
    ax.figure.savefig(out / f"scores_{name}.png", dpi=80, bbox_inches="tight")
    plt.close("all")
    print(
        f"{name}: widths {adapter.widths(result.model)}, edges {result.edges_alive}, "
        f"spline test RMSE {result.final_test_rmse:.2e}; formula {formula.expression} "
        f"(test RMSE {formula.test_rmse:.2e}, R^2 {formula.test_r2:.4f})"
    )


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
    out.mkdir(parents=True, exist_ok=True)
    data, names = feynman(16)
    render("feynman16_2in", data, names, [2, 5, 1], out)
    data, names = feynman(5)
    render("feynman5_I.9.18", data, names, [9, 5, 1], out, steps=20)
    data, names = deep_dataset()
    render("deep_4-4-2-1", data, names, [4, 4, 2, 1], out)


if __name__ == "__main__":
    main()
