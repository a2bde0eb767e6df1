"""Training speed: pykan's ``model.fit`` against emp_kan's fast path, same model, same steps.

Run: ``.venv/bin/python benchmarks/bench_train.py [--steps 20] [--rows 1000] [--threads 1]``

For each width ([2,5,1], [4,5,1], [6,5,1]) and each regime (lamb 0 and lamb 1e-3, LBFGS) both
engines train copies of the same pykan model on the same rows (1000 train rows, a smooth law of
the inputs, 250 validation rows) for the same number of steps, in one process, alternating so
that machine load falls on both. Prints seconds, the ratio pykan / fast, and both validation
RMSEs with their ratio (target: time ratio >= 5, RMSE ratio fast / pykan <= 1.1).

The fast path's loops are compiled once per process (numba; kept on disk where Python may
write bytecode): that one-off cost is measured first, on a tiny fit, and printed apart from
the timed runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from emp_kan.kan import adapter


def law(x: torch.Tensor) -> torch.Tensor:
    """A smooth law of every input: sum of sin(pi x_i / (i + 1)) + the first two inputs' product."""
    terms = [torch.sin(torch.pi * x[:, i] / (i + 1)) for i in range(x.shape[1])]
    return (sum(terms) + x[:, 0] * x[:, 1])[:, None]


def data(n_in: int, rows: int, seed: int = 0) -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(rows + rows // 4, n_in, generator=gen) * 2 - 1
    y = law(x)
    fit = {
        "train_input": x[:rows],
        "train_label": y[:rows],
        "test_input": x[rows:],
        "test_label": y[rows:],
    }
    return fit, {"x": x[rows:], "y": y[rows:]}


def one(width, lamb, steps, rows, engine):
    fit, val = data(width[0], rows)
    model = adapter.make_kan(width, grid=5, k=3, seed=0)
    start = time.perf_counter()
    adapter.fit(model, fit, steps, lamb, seed=0, engine=engine)
    seconds = time.perf_counter() - start
    return seconds, adapter.rmse(model, val["x"], val["y"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch threads {args.threads}, {args.rows} rows, {args.steps} LBFGS steps, "
        f"best of {args.repeats}"
    )
    start = time.perf_counter()
    one([2, 3, 1], 1e-3, 1, 20, "fast")
    print(
        f"first fast fit of this process (a tiny one; it compiles the loops): "
        f"{time.perf_counter() - start:.2f} s"
    )
    print(
        f"{'width':10s} {'lamb':>6s} {'pykan s':>8s} {'fast s':>7s} {'ratio':>6s} "
        f"{'pykan val':>10s} {'fast val':>9s} {'val ratio':>9s}"
    )
    ratios = []
    for width in ([2, 5, 1], [4, 5, 1], [6, 5, 1]):
        for lamb in (0.0, 1e-3):
            runs = {"pykan": [], "fast": []}
            for _ in range(args.repeats):
                for engine in ("pykan", "fast"):
                    runs[engine].append(one(width, lamb, args.steps, args.rows, engine))
            (tp, vp), (tf, vf) = (min(runs[e]) for e in ("pykan", "fast"))
            ratios.append(tp / tf)
            print(
                f"{str(width):10s} {lamb:6.0e} {tp:8.2f} {tf:7.2f} {tp / tf:6.1f} "
                f"{vp:10.3e} {vf:9.3e} {vf / vp:9.2f}"
            )
    print(
        f"median time ratio pykan / fast: {statistics.median(ratios):.1f}x (min {min(ratios):.1f}x)"
    )


if __name__ == "__main__":
    main()
