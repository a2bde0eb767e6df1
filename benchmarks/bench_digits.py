"""The EMP paper's KAN experiment on data that installs offline: one-shot node EMP on a KAN
classifier of scikit-learn's digits.

Run: ``.venv/bin/python benchmarks/bench_digits.py [--seeds 0,1,2,3,4] [--steps 100]
[--out FILE.jsonl] [--figure FILE.png]``

Paper (MNIST, efficient-kan [784, 64, 10], AdamW, 10 epochs, no sparsity penalty): one-shot node
EMP per hidden layer at beta 1 with node score max(max in, max out) of the edges' mean |scaled
spline coefficient|, no fine-tuning: 97.15% -> 94.36%. Here: digits (8x8, 1,797 images, a
stratified 80/20 split, pixels scaled to [-1, 1]), a pykan [64, 64, 10] KAN, grid 5, k 3, no
sparsity penalty, full-batch Adam (lr 1e-2, ``--steps``) through the fast training path; then, on
each seed's one trained model: EMP at beta 0.5 ... 2 with node score max(max in, max out) of
pykan's attribution edge scores, EMP at beta 1 with the paper's own score (mean |scaled spline
coefficient|, same pooling), pykan's node threshold 1e-2 (attribution scores, as
``model.prune_node`` does), and a random choice of as many nodes as EMP at beta 1 kept (10
draws). Rows go to ``--out`` as each seed finishes; a rerun skips finished seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

BETAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
RANDOM_DRAWS = 10


def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16 * 2 - 1, y, test_size=0.2, random_state=0, stratify=y)


def evaluate(model, x: torch.Tensor, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on ``x (n, 64)``, labels ``y (n,)``."""
    from emp_kan.kan import adapter

    with torch.no_grad():
        logits = adapter.forward_pass(model, x)
    accuracy = float((logits.argmax(1).numpy() == y).mean())
    return accuracy, float(torch.nn.functional.cross_entropy(logits, torch.tensor(y)))


def _fixed_scores(marks: np.ndarray):
    def node_scores(model, x):
        return [marks]

    return node_scores


def one_seed(seed: int, steps: int) -> dict:
    from emp_kan import EMPKANClassifier, EMPPruner, ThresholdPruner
    from emp_kan.kan import adapter
    from emp_kan.pruning.step import prune_step

    x_tr, x_te, y_tr, y_te = digits_split()
    start = time.perf_counter()
    clf = EMPKANClassifier(hidden=(64,), steps=steps, prune_schedule="none", seed=seed)
    clf.fit(x_tr, y_tr)
    seconds = time.perf_counter() - start
    dense = clf.dense_model_
    x_fit = torch.tensor(x_tr, dtype=torch.float32)
    x_test = torch.tensor(x_te, dtype=torch.float32)
    row = {"seed": seed, "steps": steps, "train_seconds": seconds}
    row["dense"] = dict(zip(("accuracy", "loss"), evaluate(dense, x_test, y_te), strict=True))
    row["dense"]["hidden"] = 64

    def pruned(pruner) -> dict:
        step = prune_step(dense, x_fit, pruner)
        accuracy, loss = evaluate(step.model, x_test, y_te)
        return {"accuracy": accuracy, "loss": loss, "hidden": adapter.widths(step.model)[1]}

    row["emp"] = {
        str(beta): pruned(
            EMPPruner(target="nodes", beta=beta, edge_score="attribution", node_score="max_in_out")
        )
        for beta in BETAS
    }
    row["emp_paper_score"] = pruned(
        EMPPruner(target="nodes", edge_score="coefficient", node_score="max_in_out")
    )
    row["threshold"] = pruned(ThresholdPruner(node_th=1e-2, target="nodes"))
    count = row["emp"]["1.0"]["hidden"]
    rng = np.random.default_rng(1000 + seed)
    draws = []
    for _ in range(RANDOM_DRAWS):
        chosen = rng.choice(64, size=count, replace=False)
        marks = np.zeros(64)
        marks[chosen] = 1.0
        # EMP on scores of 1 for the chosen nodes and 0 elsewhere keeps exactly those.
        draws.append(
            pruned(
                EMPPruner(target="nodes", edge_score="coefficient", node_score=_fixed_scores(marks))
            )
        )
    row["random"] = {
        "hidden": count,
        "accuracy": statistics.mean(d["accuracy"] for d in draws),
        "loss": statistics.mean(d["loss"] for d in draws),
        "accuracy_draws": [d["accuracy"] for d in draws],
    }
    return row


def summarise(rows: list[dict]) -> None:
    def line(name: str, parts: list[dict]) -> None:
        acc = [p["accuracy"] * 100 for p in parts]
        loss = [p["loss"] for p in parts]
        hidden = [p["hidden"] for p in parts]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(
            f"{name:28s} {statistics.mean(hidden):6.1f} {statistics.mean(acc):8.2f} "
            f"{sd:6.2f} {statistics.mean(loss):8.3f}"
        )

    print(f"{len(rows)} seeds; mean over seeds")
    print(f"{'model':28s} {'hidden':>6s} {'acc %':>8s} {'sd':>6s} {'loss':>8s}")
    line("dense", [r["dense"] for r in rows])
    for beta in BETAS:
        line(f"EMP beta {beta}, one shot", [r["emp"][str(beta)] for r in rows])
    line("EMP beta 1, paper's score", [r["emp_paper_score"] for r in rows])
    line("pykan node threshold 1e-2", [r["threshold"] for r in rows])
    line("random, EMP beta 1's count", [r["random"] for r in rows])
    drops_emp = [(r["dense"]["accuracy"] - r["emp"]["1.0"]["accuracy"]) * 100 for r in rows]
    drops_random = [(r["dense"]["accuracy"] - r["random"]["accuracy"]) * 100 for r in rows]
    print(
        f"accuracy drop at beta 1: EMP {statistics.mean(drops_emp):.2f} points, random "
        f"{statistics.mean(drops_random):.2f}; EMP smaller on "
        f"{sum(e < r for e, r in zip(drops_emp, drops_random, strict=True))}/{len(rows)} "
        "seeds"
    )


def figure(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.plot(
            [r["emp"][str(b)]["hidden"] for b in BETAS],
            [r["emp"][str(b)]["accuracy"] * 100 for b in BETAS],
            "o-",
            color="C0",
            alpha=0.6,
            label="EMP, beta 0.5-2" if r is rows[0] else None,
        )
        ax.plot(
            [r["random"]["hidden"]],
            [r["random"]["accuracy"] * 100],
            "s",
            color="C3",
            label="random, same count as EMP beta 1" if r is rows[0] else None,
        )
        ax.plot(
            [r["threshold"]["hidden"]],
            [r["threshold"]["accuracy"] * 100],
            "^",
            color="C2",
            label="pykan node threshold 1e-2" if r is rows[0] else None,
        )
        ax.plot(
            [64],
            [r["dense"]["accuracy"] * 100],
            "D",
            color="0.2",
            label="dense" if r is rows[0] else None,
        )
    ax.set_xlabel("hidden nodes kept (of 64)")
    ax.set_ylabel("test accuracy %")
    ax.set_title("digits, KAN [64, 64, 10], one-shot node pruning, no fine-tuning")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results/digits.jsonl")
    parser.add_argument("--figure", default="")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {(r["seed"], r["steps"]) for r in rows}
    for seed in (int(s) for s in args.seeds.split(",") if s):
        if (seed, args.steps) in done:
            continue
        row = one_seed(seed, args.steps)
        with out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        rows.append(row)
        print(
            f"seed {seed}: dense {row['dense']['accuracy']:.4f}, EMP beta 1 "
            f"{row['emp']['1.0']['accuracy']:.4f} with {row['emp']['1.0']['hidden']} nodes, "
            f"random {row['random']['accuracy']:.4f} ({row['train_seconds']:.0f} s)",
            flush=True,
        )
    rows = [r for r in rows if r["steps"] == args.steps]
    summarise(rows)
    if args.figure:
        figure(rows, args.figure)


if __name__ == "__main__":
    main()
