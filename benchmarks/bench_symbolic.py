"""Our symbolic stage against pykan's ``auto_symbolic``, on the same pruned models.

Run: ``.venv/bin/python benchmarks/bench_symbolic.py [--equations 1,2,...] [--pruner NAME]
[--out FILE.jsonl]``

For each Feynman equation (pykan's set): train a [n, 5, 1] KAN, prune it (default: EMP on edges
with beta 2; EMP with target "both" and beta 1 rolls its first round back on most of these
equations and so leaves the model unpruned - see ``bench_emp_beta.py``), then on that one pruned
model, with the same function library:

* per edge, on the same spline samples (no retraining in between): R^2 of our best fit and of
  the function pykan's ``auto_symbolic`` fixed, both measured as 1 - SSE/SST against the spline;
* stage time: our whole ``fit_formula`` (fits, retraining, refits, end-to-end search,
  simplification) against pykan's ``auto_symbolic`` alone (its follow-up fit is timed apart);
* end to end: test RMSE and SRBench exactness of our formula and of pykan's
  (``auto_symbolic``, 50 LBFGS steps, ``symbolic_formula``), as its tutorial does.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import sympy as sp

import emp_kan
from emp_kan._runtime import threads
from emp_kan.kan import _pykan, adapter
from emp_kan.pruning.schedule import Schedule
from emp_kan.symbolic.edge_fit import fit_edge, numpy_function
from emp_kan.symbolic.expression import evaluate_formula
from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.recovery import is_exact_recovery

EQUATIONS = (1, 2, 3, 6, 8, 10, 12, 15, 16, 25, 27, 28)


def dataset(number: int, n: int = 500):
    from kan.feynman import get_feynman_dataset
    from kan.utils import create_dataset

    symbols, expr, f, ranges = get_feynman_dataset(number)
    names = [str(s) for s in (symbols if isinstance(symbols, (list, tuple)) else [symbols])]
    with threads.preserved_global_rng(), _pykan.quiet_pykan():
        data = create_dataset(f, n_var=len(names), ranges=ranges, train_num=n, test_num=n, seed=0)
    return data, names, expr, ranges


def r2_against(pred: np.ndarray, y: np.ndarray) -> float:
    sst = float(np.sum((y - y.mean()) ** 2))
    if not np.isfinite(pred).all():
        return -math.inf
    return 1.0 - float(np.sum((pred - y) ** 2)) / sst if sst > 0 else 1.0


PRUNERS = {
    "emp-edges": lambda: emp_kan.EMPPruner(target="edges", beta=2.0),
    "emp-both": lambda: emp_kan.EMPPruner(target="both"),
    "threshold": lambda: emp_kan.ThresholdPruner(),
}


def run_equation(number: int, library, pruner: str = "emp-edges") -> dict:
    data, names, truth, ranges = dataset(number)
    n_var = len(names)
    model = emp_kan.make_kan([n_var, 5, 1], grid=5, k=3, seed=0)
    pruned = emp_kan.prune_rounds(
        model,
        data,
        PRUNERS[pruner](),
        rounds=3,
        steps=30,
        lamb=1e-3,
        initial_steps=100,
        final_steps=50,
        schedule=Schedule(tol=0.5),
    )
    x = data["train_input"]
    samples = adapter.edge_samples(pruned.model, x)
    masks = [m.numpy() for m in adapter.get_edge_masks(pruned.model)]
    edges = [
        (layer, o, i) for layer, m in enumerate(masks) for o, i in zip(*np.nonzero(m), strict=True)
    ]

    ours_r2 = []
    for layer, o, i in edges:
        xs, ys = samples[layer][0][:, o, i], samples[layer][1][:, o, i]
        best = fit_edge(xs, ys, library)[0]
        ours_r2.append(r2_against(best.predict(xs), ys))

    theirs = adapter.clone_model(pruned.model)
    theirs.symbolic_enabled = True
    adapter.forward_pass(theirs, x)
    start = time.perf_counter()
    with threads.preserved_global_rng(0), _pykan.quiet_pykan():
        theirs.auto_symbolic(lib=list(library), verbose=0)
    t_pykan = time.perf_counter() - start
    pykan_r2 = []
    for layer, o, i in edges:
        name, (a, b, c, d) = adapter.symbolic_edge(theirs, layer, o, i)
        xs, ys = samples[layer][0][:, o, i], samples[layer][1][:, o, i]
        with np.errstate(all="ignore"):
            pred = c * numpy_function(name)(a * xs + b) + d
        pykan_r2.append(r2_against(pred, ys))
    start = time.perf_counter()
    try:
        with threads.preserved_global_rng(0), _pykan.quiet_pykan():
            theirs.auto_save = False
            theirs.fit(data, opt="LBFGS", steps=50, update_grid=False)
            pykan_expr = theirs.symbolic_formula(var=names)[0][0]
        pykan_rmse, pykan_r2_test = evaluate_formula(
            pykan_expr, names, data["test_input"], data["test_label"]
        )
    except Exception as exc:  # pykan's own pipeline fails on some equations; count it
        pykan_expr, pykan_rmse, pykan_r2_test = f"failed: {type(exc).__name__}", math.nan, math.nan
    t_pykan_fit = time.perf_counter() - start

    start = time.perf_counter()
    ours = emp_kan.fit_formula(pruned, data, variables=names, library=library)
    t_ours = time.perf_counter() - start
    bounds = [
        tuple(map(float, r))
        for r in (ranges if isinstance(ranges[0], (list, tuple)) else [ranges] * n_var)
    ]
    exact_ours = is_exact_recovery(
        ours.expression, truth, names, test_r2=ours.test_r2, ranges=bounds
    )
    exact_pykan = isinstance(pykan_expr, sp.Basic) and is_exact_recovery(
        pykan_expr, truth, names, test_r2=pykan_r2_test, ranges=bounds
    )
    return {
        "equation": number,
        "truth": str(truth),
        "pruner": pruner,
        "edges": len(edges),
        "spline_test_rmse": pruned.final_test_rmse,
        "ours": {
            "formula": str(ours.expression),
            "test_rmse": ours.test_rmse,
            "test_r2": ours.test_r2,
            "exact": exact_ours,
            "seconds": t_ours,
            "edge_r2": ours_r2,
        },
        "pykan": {
            "formula": str(pykan_expr),
            "test_rmse": pykan_rmse,
            "test_r2": pykan_r2_test,
            "exact": bool(exact_pykan),
            "seconds_auto_symbolic": t_pykan,
            "seconds_followup_fit": t_pykan_fit,
            "edge_r2": pykan_r2,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--equations", default=",".join(map(str, EQUATIONS)))
    parser.add_argument("--pruner", choices=sorted(PRUNERS), default="emp-edges")
    parser.add_argument("--out", default=None, help="append one JSON line per equation here")
    args = parser.parse_args()
    library = DEFAULT_LIBRARY
    rows = []
    print(f"library: {', '.join(library)}; pruner: {args.pruner}")
    print(
        f"{'eq':>3} {'edges':>5} {'ours s':>7} {'pykan s':>8} {'speedup':>7} | "
        f"{'ours RMSE':>9} {'exact':>5} | {'pykan RMSE':>10} {'exact':>5}"
    )
    for number in map(int, args.equations.split(",")):
        row = run_equation(number, library, args.pruner)
        rows.append(row)
        o, p = row["ours"], row["pykan"]
        t_p = p["seconds_auto_symbolic"]
        print(
            f"{number:3d} {row['edges']:5d} {o['seconds']:7.1f} {t_p:8.1f} "
            f"{t_p / o['seconds']:7.1f} | {o['test_rmse']:9.2e} "
            f"{'yes' if o['exact'] else 'no':>5} | {p['test_rmse']:10.2e} "
            f"{'yes' if p['exact'] else 'no':>5}",
            flush=True,
        )
        print(
            f"    truth {row['truth']}\n    ours  {o['formula']}\n    pykan {p['formula']}",
            flush=True,
        )
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=str) + "\n")
    pairs = [
        (a, b)
        for r in rows
        for a, b in zip(r["ours"]["edge_r2"], r["pykan"]["edge_r2"], strict=True)
    ]
    at_least = sum(a >= b - 1e-9 for a, b in pairs)
    t_ours = sum(r["ours"]["seconds"] for r in rows)
    t_pykan = sum(r["pykan"]["seconds_auto_symbolic"] for r in rows)
    ratios = [r["pykan"]["seconds_auto_symbolic"] / r["ours"]["seconds"] for r in rows]
    print(
        f"\nstage time: ours {t_ours:.1f}s, pykan auto_symbolic {t_pykan:.1f}s, "
        f"ratio {t_pykan / t_ours:.1f}x (median per equation "
        f"{statistics.median(ratios):.1f}x)"
    )
    print(
        f"per-edge R^2 >= pykan's on {at_least}/{len(pairs)} edges "
        f"({100 * at_least / max(1, len(pairs)):.1f}%)"
    )
    print(
        f"exact recoveries: ours {sum(r['ours']['exact'] for r in rows)}/{len(rows)}, "
        f"pykan {sum(r['pykan']['exact'] for r in rows)}/{len(rows)}"
    )
    better = sum(
        r["ours"]["test_rmse"] < r["pykan"]["test_rmse"]
        or not math.isfinite(r["pykan"]["test_rmse"])
        for r in rows
    )
    print(f"formula test RMSE lower than pykan's on {better}/{len(rows)} equations")


if __name__ == "__main__":
    main()
