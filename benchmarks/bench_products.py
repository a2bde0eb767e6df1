"""The product search (``fit_products`` and its polish in ``y``): this tree against another
commit, in one run.

Run: ``.venv/bin/python benchmarks/bench_products.py [--base COMMIT] [--repeats 2]``

The base commit is checked out into a temporary git worktree (removed afterwards). Each tree
runs the search on the same Feynman equations (300 samples, seed 0, every input, the default
library) in a fresh process, once to compile and warm up, then ``--repeats`` timed passes;
the trees alternate. Prints per tree the best total seconds over the equations and the ratio
base / this tree, and the equations where the best fit's error moved by more than 1%.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _worktree import ROOT, checked_out  # benchmarks/, beside this script

EQUATIONS = (2, 6, 8, 10, 11, 15, 19, 26, 27, 31, 37, 40, 46, 50, 53)

_PROBE = """
import json, sys, time
from emp_kan.data.problems import feynman_problem
from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.products.search import product_search
searches = {}
for eq in %(equations)r:
    problem = feynman_problem(eq, 300, 0)
    inputs = list(range(len(problem.variables)))
    try:  # the tree's own signature: rows carved once, or a dataset and its share
        from emp_kan.data.split import Split
        rows = (Split.of(problem.dataset, 0.2),)
    except ImportError:
        rows = (problem.dataset, 0.2)
    searches[eq] = product_search(*rows[:1], inputs, *rows[1:], tuple(DEFAULT_LIBRARY), 3)[1]
searches[%(equations)r[0]]()  # compile
best, errors = None, {}
for _ in range(%(repeats)d):
    start = time.perf_counter()
    for eq, search in searches.items():
        found = search()
        errors[eq] = found[0][1] if found else None
    seconds = time.perf_counter() - start
    best = seconds if best is None else min(best, seconds)
print(json.dumps({"seconds": best, "errors": errors}))
"""


def run(tree: Path, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    code = _PROBE % {"equations": EQUATIONS, "repeats": repeats}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="5eea388", help="commit to compare against")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with checked_out(args.base) as base:
        base_run, this_run = run(base, args.repeats), run(ROOT, args.repeats)
    b, t = base_run["seconds"], this_run["seconds"]
    print(
        f"product search on {len(EQUATIONS)} equations: base {args.base} {b:.2f} s, "
        f"this tree {t:.2f} s, ratio {b / t:.2f}x"
    )
    for eq in EQUATIONS:
        before, after = base_run["errors"][str(eq)], this_run["errors"][str(eq)]
        if (before is None) != (after is None) or (
            before is not None and abs(after - before) > 0.01 * max(before, 1e-12)
        ):
            print(f"  Feynman {eq}: best fit's RMSE {before} -> {after}")


if __name__ == "__main__":
    main()
