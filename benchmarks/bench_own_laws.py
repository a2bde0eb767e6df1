"""Exact recovery on laws outside pykan's Feynman list, with the defaults a user gets.

Run: ``.venv/bin/python benchmarks/bench_own_laws.py [--out FILE.jsonl] [--only 1,2]``

Twelve laws in five shapes (the shapes where the pipeline used to fail: compositions of two
library functions in one variable, sums of one-variable terms, functions of a sum, products and
ratios of powers, a power times a function). Each is one default ``emp-kan discover``
(``DiscoverConfig()``: [n, 5, 1] KAN, 500 training and 500 test rows, seed 0; EMP and pykan's
thresholds from the same trained models). Rows are appended to ``--out`` as they finish; a rerun
skips the laws already there, so a killed run loses nothing finished.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from emp_kan.data.problems import formula_problem
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.discover import discover

LAWS = [
    # (shape, formula, ranges)
    ("composition", "exp(sin(x))", "x=-2:2"),
    ("composition", "sqrt(x**2 + 1)", "x=-2:2"),
    ("composition", "log(cos(x) + 2)", "x=-3:3"),
    ("sum of terms", "sin(x) + y**2", "x=-2:2,y=-2:2"),
    ("sum of terms", "exp(x) + 1/y", "x=-1:1,y=1:3"),
    ("function of a sum", "sin(x + y)", "x=-1:1,y=-1:1"),
    ("function of a sum", "exp(x + 2*y)", "x=-1:1,y=-1:1"),
    ("function of a sum", "sqrt(x**2 + y**2)", "x=0.5:2,y=0.5:2"),
    ("product of powers", "x*y**2/z", "x=-1:1,y=0.5:2,z=0.5:2"),
    ("product of powers", "x**3/(y*sqrt(z))", "x=0.5:2,y=-2:-0.5,z=1:3"),
    ("power times function", "x**2*exp(-y)", "x=-1:1,y=0:2"),
    ("power times function", "x*sin(y)", "x=0.5:2,y=-1:1"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/own-laws.jsonl")
    parser.add_argument("--only", default="", help="law numbers (1-based), e.g. 1,4")
    args = parser.parse_args()
    out = Path(args.out)
    done = (
        {json.loads(line)["law"] for line in out.read_text().splitlines()}
        if out.exists()
        else set()
    )
    wanted = {int(v) for v in args.only.split(",") if v} or set(range(1, len(LAWS) + 1))
    for number, (shape, formula, ranges) in enumerate(LAWS, start=1):
        if number not in wanted or number in done:
            continue
        problem = formula_problem(formula, ranges, samples=500, seed=0)
        start = time.perf_counter()
        report, _ = discover(problem, DiscoverConfig())
        row = {
            "law": number,
            "shape": shape,
            "truth": formula,
            "seconds": time.perf_counter() - start,
        }
        for name, part in (("emp", report), ("threshold", report["baseline"])):
            keys = ("formula", "exact", "test_rmse", "spline_test_rmse", "transform")
            row[name] = {key: part[key] for key in keys}
            row[name]["edges"] = part["edges"]["final"]
        with out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(
            f"{number:2d} {shape:20s} {formula:20s} EMP {row['emp']['exact']!s:5s} "
            f"{row['emp']['formula'][:40]:40s} thr {row['threshold']['exact']!s:5s} "
            f"{row['seconds']:.0f} s",
            flush=True,
        )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for name in ("emp", "threshold"):
        exact = sum(bool(r[name]["exact"]) for r in rows)
        within = sum(
            1
            for r in rows
            if r[name]["test_rmse"] is not None
            and r[name]["test_rmse"] <= 2 * r[name]["spline_test_rmse"]
        )
        print(
            f"{name}: exact {exact}/{len(rows)}; formula test RMSE <= 2x spline's on "
            f"{within}/{len(rows)}"
        )


if __name__ == "__main__":
    main()
