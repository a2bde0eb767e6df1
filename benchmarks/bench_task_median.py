"""The 30-equation bench's median task time: this tree's HEAD against another commit, in one run.

Run: ``.venv/bin/python benchmarks/bench_task_median.py --base COMMIT [--repeats 1]``

Both commits are checked out into temporary git worktrees (removed afterwards) and run the
docs' 30-equation command with EMP only (``emp-kan bench --equations <the 30> --methods emp
--seeds 0``, noise 0, the bench defaults) into temporary folders, one after the other and
alternating with ``--repeats``, in fresh processes with the same interpreter and
``PYTHONDONTWRITEBYTECODE=1`` (each worker compiles its loops once, in both trees alike).
Prints each run's median seconds per task and exact count, and the ratio HEAD / base of the
medians (issue 30's limit: at most 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _worktree import checked_out  # benchmarks/, beside this script

EQUATIONS = "1,2,3,6,8,10,11,15,16,19,22,25,26,27,28,30,31,35,36,37,38,40,41,46,49,50,53,54,58,59"


def run(tree: Path, out: Path) -> tuple[float, int]:
    """The bench in ``tree`` into ``out``: (median seconds per task, exact count)."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "emp_kan.app.cli", "bench", "--equations", EQUATIONS]
    command += ["--methods", "emp", "--seeds", "0", "--out", str(out), "--no-progress"]
    subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return statistics.median(r["seconds"] for r in rows), sum(bool(r["exact"]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    medians: dict[str, list[float]] = {"base": [], "head": []}
    with checked_out(args.base) as base, checked_out("HEAD") as head:
        trees = {"base": base, "head": head}
        for repeat in range(args.repeats):
            for name in ("base", "head") if repeat % 2 == 0 else ("head", "base"):
                out = base.parent / f"{name}-{repeat}"
                median, exact = run(trees[name], out)
                medians[name].append(median)
                print(f"{name} run {repeat + 1}: median {median:.2f} s per task, exact {exact}/30")
    base_median, head_median = min(medians["base"]), min(medians["head"])
    print(
        f"median task: base {base_median:.2f} s, HEAD {head_median:.2f} s; "
        f"HEAD / base = {head_median / base_median:.2f}"
    )


if __name__ == "__main__":
    main()
