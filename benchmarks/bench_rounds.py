"""Evidence for the round loop: overhead, the authors' diabetes prototype, EMP vs thresholds.

Run: ``.venv/bin/python benchmarks/bench_rounds.py [--parts PARTS]``, PARTS among
``overhead,diabetes,diabetes_seeds,diabetes_seeds_pykan,feynman`` (default: overhead,
diabetes, feynman).

* overhead: per round, (scoring + pruning + compaction seconds) / (that round's training seconds).
* diabetes: the EMP authors' pykan prototype (sklearn diabetes, standardised, 80/20 split,
  [10, 16, 1], grid 5, k 3, seed 0, 300 LBFGS steps, lamb 1e-3, one-shot node EMP per hidden
  layer with beta 1 and node score min(max in, max out) of attribution edge scores), next to
  pykan's threshold pruning and iterative EMP with retraining, all from the same trained model.
* feynman: ten equations from pykan's set; one trained model each, then iterative EMP
  (edges and nodes) and pykan's thresholds with the same rounds, steps, tol and seed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from emp_kan._runtime import threads
from emp_kan.kan import _pykan, adapter
from emp_kan.kan.training import train
from emp_kan.pruning.pruners import EMPPruner, ThresholdPruner
from emp_kan.pruning.rounds import prune_rounds
from emp_kan.pruning.schedule import Schedule
from emp_kan.pruning.step import prune_step

FEYNMAN = (1, 2, 3, 6, 8, 10, 15, 16, 25, 28)


def feynman_dataset(number: int, n: int, seed: int):
    from kan.feynman import get_feynman_dataset
    from kan.utils import create_dataset

    symbols, expr, f, ranges = get_feynman_dataset(number)
    n_var = len(symbols) if isinstance(symbols, (list, tuple)) else 1
    with threads.preserved_global_rng(), _pykan.quiet_pykan():
        data = create_dataset(f, n_var=n_var, ranges=ranges, train_num=n, test_num=n, seed=seed)
    return data, n_var, expr


def edges_alive(model) -> int:
    return sum(int(m.sum()) for m in adapter.get_edge_masks(model))


def overhead() -> None:
    print("== overhead: (score + prune + compact) / train seconds, per round")
    data, n_var, _ = feynman_dataset(10, 1000, 0)
    model = adapter.make_kan([n_var, 5, 1], grid=5, k=3, seed=0)
    res = prune_rounds(
        model,
        data,
        EMPPruner(target="both"),
        rounds=4,
        steps=20,
        lamb=1e-2,
        schedule=Schedule(tol=10.0),
    )
    shares = []
    for r in res.history:
        if r.seconds_train > 0:
            share = (r.seconds_score + r.seconds_prune) / r.seconds_train
            shares.append(share)
            print(
                f"round {r.round}: train {r.seconds_train:.2f}s, score {r.seconds_score:.3f}s, "
                f"prune+compact {r.seconds_prune:.3f}s, overhead {100 * share:.2f}%"
            )
    if shares:
        print(f"median overhead {100 * statistics.median(shares):.2f}% of training time")


def diabetes_data() -> dict:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y[:, None], test_size=0.2, random_state=0)
    mx, sx, my, sy = x_tr.mean(0), x_tr.std(0), y_tr.mean(0), y_tr.std(0)

    def t(a):
        return torch.tensor(a, dtype=torch.float32)

    return {
        "train_input": t((x_tr - mx) / sx),
        "train_label": t((y_tr - my) / sy),
        "test_input": t((x_te - mx) / sx),
        "test_label": t((y_te - my) / sy),
    }


def diabetes_seeds(seeds=range(5), engine: str = "fast") -> None:
    """The one-shot node EMP count over training seeds: how much it moves with the model.

    ``engine="pykan"`` trains with pykan's own ``fit``, as the authors' prototype did.
    """
    import statistics

    print(f"== diabetes: one-shot node EMP (beta 1, min_in_out) over training seeds, {engine}")
    data = diabetes_data()
    kept, errors = [], []
    for seed in seeds:
        trained = adapter.make_kan([10, 16, 1], grid=5, k=3, seed=seed)
        adapter.fit(trained, data, 300, 1e-3, seed, engine=engine)
        pruner = EMPPruner(target="nodes", beta=1.0, node_score="min_in_out")
        step = prune_step(trained, data["train_input"], pruner)
        kept.append(adapter.widths(step.model)[1])
        errors.append(adapter.rmse(trained, data["test_input"], data["test_label"]) ** 2)
        print(
            f"seed {seed}: 16 -> {kept[-1]} hidden nodes (trained test MSE {errors[-1]:.3f})",
            flush=True,
        )
    print(
        f"kept: mean {statistics.mean(kept):.1f}, sd {statistics.stdev(kept):.1f}, "
        f"range {min(kept)}-{max(kept)} (authors: 10)"
    )


def diabetes() -> None:
    print("== diabetes: the EMP authors' pykan prototype")
    data = diabetes_data()
    start = time.perf_counter()
    trained = train(
        adapter.make_kan([10, 16, 1], grid=5, k=3, seed=0), data, steps=300, lamb=1e-3, seed=0
    )
    print(f"trained 300 steps in {time.perf_counter() - start:.1f}s")

    def mse(model):
        return adapter.rmse(model, data["test_input"], data["test_label"]) ** 2

    print(f"{'method':46} {'hidden':>6} {'edges':>6} {'test MSE':>9}")
    print(f"{'trained (no pruning)':46} {16:6d} {edges_alive(trained):6d} {mse(trained):9.3f}")
    print(f"{'authors reported: trained':46} {16:6d} {'':>6} {1.139:9.3f}")
    print(f"{'authors reported: node EMP beta 1, one shot':46} {10:6d} {'':>6} {1.213:9.3f}")
    for beta in (0.5, 0.75, 1.0, 1.25):
        pruner = EMPPruner(target="nodes", beta=beta, node_score="min_in_out")
        step = prune_step(trained, data["train_input"], pruner)
        label = f"ours: node EMP beta {beta}, one shot"
        print(
            f"{label:46} {adapter.widths(step.model)[1]:6d} {edges_alive(step.model):6d} "
            f"{mse(step.model):9.3f}"
        )
    step = prune_step(trained, data["train_input"], ThresholdPruner())
    print(
        f"{'pykan thresholds (1e-2, 3e-2), one shot':46} {adapter.widths(step.model)[1]:6d} "
        f"{edges_alive(step.model):6d} {mse(step.model):9.3f}"
    )
    for name, pruner in (
        (
            "iterative node EMP, 3 rounds x 50 steps",
            EMPPruner(target="nodes", node_score="min_in_out"),
        ),
        ("iterative EMP both, 3 rounds x 50 steps", EMPPruner(target="both")),
        ("iterative thresholds, 3 rounds x 50 steps", ThresholdPruner()),
    ):
        res = prune_rounds(
            trained,
            data,
            pruner,
            rounds=3,
            steps=50,
            lamb=1e-3,
            initial_steps=0,
            schedule=Schedule(tol=0.2),
            seed=0,
        )
        status = res.history[-1].status if res.history else "-"
        print(
            f"{name:46} {adapter.widths(res.model)[1]:6d} {edges_alive(res.model):6d} "
            f"{mse(res.model):9.3f}  ({len(res.history)} attempts; last: {status[:40]})"
        )


def feynman() -> None:
    print("== feynman: EMP (both) vs pykan thresholds from the same trained model")
    print("   [n, 5, 1], grid 5, 500/500 samples, train 50 steps lamb 1e-2; 3 rounds x 20 steps")
    print("   lamb 1e-2, tol 0.5; then 50 steps lamb 0 (same for both, and for 'unpruned')")
    print(
        f"{'eq':>3} {'vars':>4} {'edges0':>6} | {'EMP edges':>9} {'EMP RMSE':>9} | "
        f"{'thr edges':>9} {'thr RMSE':>9} | {'unpruned RMSE':>13}"
    )
    fewer = more = same = 0
    for number in FEYNMAN:
        data, n_var, _ = feynman_dataset(number, 500, 0)
        trained = train(
            adapter.make_kan([n_var, 5, 1], grid=5, k=3, seed=0), data, steps=50, lamb=1e-2, seed=0
        )
        unpruned = train(trained, data, steps=50, lamb=0.0, seed=4)
        base = adapter.rmse(unpruned, data["test_input"], data["test_label"])
        row = []
        for pruner in (EMPPruner(target="both"), ThresholdPruner()):
            res = prune_rounds(
                trained,
                data,
                pruner,
                rounds=3,
                steps=20,
                lamb=1e-2,
                initial_steps=0,
                final_steps=50,
                schedule=Schedule(tol=0.5),
                seed=0,
            )
            row.append((edges_alive(res.model), res.final_test_rmse))
        (e_emp, r_emp), (e_thr, r_thr) = row
        fewer += e_emp < e_thr
        more += e_emp > e_thr
        same += e_emp == e_thr
        print(
            f"{number:3d} {n_var:4d} {edges_alive(trained):6d} | {e_emp:9d} {r_emp:9.2e} | "
            f"{e_thr:9d} {r_thr:9.2e} | {base:13.2e}",
            flush=True,
        )
    print(f"EMP kept fewer edges on {fewer}, more on {more}, as many on {same} of {len(FEYNMAN)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="overhead,diabetes,feynman")
    parts = parser.parse_args().parts.split(",")
    np.set_printoptions(precision=4)
    for part in parts:
        {
            "overhead": overhead,
            "diabetes": diabetes,
            "diabetes_seeds": diabetes_seeds,
            "diabetes_seeds_pykan": lambda: diabetes_seeds(engine="pykan"),
            "feynman": feynman,
        }[part]()


if __name__ == "__main__":
    main()
