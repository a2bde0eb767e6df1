"""Feynman equations with and without their units, in one run: exact counts and time per task.

Run: ``.venv/bin/python benchmarks/bench_units.py --out DIR [--equations 1-19,21-112,115-120]
[--noise 0,0.01]``

Runs ``emp-kan bench`` for EMP twice on the same rows, seeds and budget (the docs' 117-equation
budget: 300 rows, 40 steps, 3 rounds of 15), once with ``--units`` (each equation's SI units
from ``emp_kan.data.feynman_units``) and once without, into ``DIR/units`` and ``DIR/plain``
(resumable: finished tasks are kept). Prints per noise level the exact counts of both, the
equations each finds alone, the share of the laws with three or more inputs that the plain run
misses and the units run finds, and the time per task (quartiles) with the ratio of the
medians, units / plain (target: <= 1).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from emp_kan.app.bench import BenchSettings, parse_levels, parse_numbers, run_bench
from emp_kan.data.feynman import feynman_entry

_BUDGET = {"samples": 300, "steps": 40, "round_steps": 15, "rounds": 3}


def _quartiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:.1f} / {statistics.median(values):.1f} / {q[2]:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--equations", default="1-19,21-112,115-120")
    parser.add_argument("--noise", default="0")
    parser.add_argument("--scheduler", default=None)
    args = parser.parse_args()
    equations = parse_numbers(args.equations, "equations")
    levels = parse_levels(args.noise)
    rows = {}
    for name, units in (("units", True), ("plain", False)):
        settings = BenchSettings(**_BUDGET, units=units).check()
        rows[name] = run_bench(
            equations,
            ["emp"],
            [0],
            args.out / name,
            settings,
            scheduler=args.scheduler,
            noise_levels=levels,
        )
    inputs = {e: len(feynman_entry(e)[0]) for e in equations}
    for level in levels:
        by = {
            name: {r["equation"]: r for r in found if r["noise"] == level}
            for name, found in rows.items()
        }
        exact = {name: {e for e, r in got.items() if r.get("exact")} for name, got in by.items()}
        print(f"noise {level:g}: {len(equations)} equations")
        for name in ("units", "plain"):
            print(f"  {name:6s} exact {len(exact[name])}")
        print(f"  units alone: {sorted(exact['units'] - exact['plain'])}")
        print(f"  plain alone: {sorted(exact['plain'] - exact['units'])}")
        missed = {e for e in equations if inputs[e] >= 3 and e not in exact["plain"]}
        found = missed & exact["units"]
        print(f"  laws of 3+ inputs the plain run misses: {len(missed)}; units find {len(found)}")
        seconds = {n: [r["seconds"] for r in got.values()] for n, got in by.items()}
        for name in ("units", "plain"):
            print(f"  {name:6s} seconds per task (quartiles) {_quartiles(seconds[name])}")
        ratio = statistics.median(seconds["units"]) / statistics.median(seconds["plain"])
        print(f"  median time units / plain: {ratio:.2f}")


if __name__ == "__main__":
    main()
