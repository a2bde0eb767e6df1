"""Default ``emp-kan discover`` wall time: this tree against another commit, in one run.

Run: ``.venv/bin/python benchmarks/bench_discover.py [--base COMMIT] [--repeats 2]``

The base commit is checked out into a temporary git worktree (removed afterwards) and both
trees run ``emp-kan discover --quiet --out DIR`` (Feynman eq. 37, both methods) in fresh
processes with the same interpreter, alternating. Prints the best time of each and the ratio
base / this tree (target: >= 3).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _worktree import ROOT, checked_out  # benchmarks/, beside this script


def run(tree: Path, out: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "emp_kan.app.cli" if (tree / "emp_kan/app").exists()
                    else "emp_kan.cli", "discover", "--quiet", "--out", str(out)],
                   cwd=out.parent, env=env, check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="d50f3a6", help="commit to compare against")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with checked_out(args.base) as base:
        times = {"base": [], "this": []}
        for k in range(args.repeats):
            for name, tree in (("base", base), ("this", ROOT)):
                times[name].append(run(tree, base.parent / f"out-{name}-{k}"))
    b, t = min(times["base"]), min(times["this"])
    print(f"default discover: base {args.base} {b:.1f} s, this tree {t:.1f} s, "
          f"ratio {b / t:.2f}x")  # fmt: skip

if __name__ == "__main__":
    main()
