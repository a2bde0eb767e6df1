"""Newton's gravity in SI units from a CSV: is ``G*m1*m2/r**2`` returned, and how close is G?

Each run writes a table of ``m1`` (1e23..1e25 kg), ``m2`` (1e22..1e24 kg), ``r`` (1e6..1e8 m)
and ``F = 6.674e-11*m1*m2/r**2 * (1 + noise * N(0, 1))`` (the generator of
``tests/test_messy_tables.py``), runs ``emp-kan discover --csv`` on it in this process
(``--compare none``), and records whether the formula is ``G*m1*m2/r**2`` (its ratio to
``m1*m2/r**2`` is a constant), G's relative error, and G's reported standard error (None when
G snapped to a number). Rows are appended to ``--out`` as they finish; a rerun skips the runs
already there.

    .venv/bin/python benchmarks/bench_newton.py [--out FILE.jsonl] [--seeds 0-9]
        [--rows 300,3000] [--noise 0,0.01]

Prints, per (rows, noise): the runs in form, G within 0.1%, and G within 2 of its reported
standard errors.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import sympy as sp

from emp_kan.app.cli import main
from emp_kan.data.formula_parse import parse_formula

G = 6.674e-11


def write_table(path: Path, rows: int, noise: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m1, m2 = rng.uniform(1e23, 1e25, rows), rng.uniform(1e22, 1e24, rows)
    r = rng.uniform(1e6, 1e8, rows)
    force = G * m1 * m2 / r**2 * (1 + noise * rng.standard_normal(rows))
    table = np.column_stack([m1, m2, r, force])
    np.savetxt(path, table, delimiter=",", header="m1,m2,r,F", comments="", fmt="%.9e")


def constant_of(formula: str) -> float | None:
    """G when ``formula`` is a constant times ``m1*m2/r**2``, else None."""
    expr = parse_formula(formula)
    m1, m2, r = (sp.Symbol(n, positive=True) for n in ("m1", "m2", "r"))
    expr = expr.xreplace({s: sp.Symbol(s.name, positive=True) for s in expr.free_symbols})
    ratio = sp.simplify(expr / (m1 * m2 / r**2))
    return float(ratio) if not ratio.free_symbols else None


def run_one(rows: int, noise: float, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "gravity.csv"
        write_table(csv, rows, noise, seed)
        out = Path(tmp) / "report"
        argv = ["discover", "--csv", str(csv), "--target", "F", "--out", str(out)]
        with contextlib.redirect_stdout(io.StringIO()):  # the CLI's summary of each run
            code = main(argv + ["--no-progress", "--compare", "none"])
        if code != 0:
            return {"exit": code}
        report = json.loads((out / "report.json").read_text())
    constant = constant_of(report["formula"])
    errors = [c["std_error"] for c in report.get("constants") or [] if c.get("std_error")]
    # the largest float of G*m1*m2/r**2 is G; a snapped G has no error bar
    std_error = errors[0] if constant is not None and errors else None
    return {
        "exit": 0,
        "formula": report["formula"],
        "in_form": constant is not None,
        "G": constant,
        "relative_error": None if constant is None else abs(constant / G - 1),
        "std_error": std_error,
    }


def _ints(text: str) -> list[int]:
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(t) for t in text.split(",")]


def main_bench(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("newton.jsonl"))
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--rows", default="300,3000")
    parser.add_argument("--noise", default="0,0.01")
    args = parser.parse_args(argv)
    done = {}
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            row = json.loads(line)
            done[(row["rows"], row["noise"], row["seed"])] = row
    sizes = _ints(args.rows)
    levels = [float(v) for v in args.noise.split(",")]
    for rows in sizes:
        for noise in levels:
            for seed in _ints(args.seeds):
                key = (rows, noise, seed)
                if key in done:
                    continue
                row = {"rows": rows, "noise": noise, "seed": seed, **run_one(rows, noise, seed)}
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                done[key] = row
    print("rows   noise  runs  in form  G within 0.1%  G within 2 SE")
    for rows in sizes:
        for noise in levels:
            got = [r for (n, z, _), r in done.items() if n == rows and z == noise]
            form = [r for r in got if r.get("in_form")]
            close = [r for r in form if r["relative_error"] <= 1e-3]
            two_se = [
                r
                for r in form
                if r["std_error"] is not None and abs(r["G"] - G) <= 2 * r["std_error"]
            ]
            print(
                f"{rows:<6} {noise:<6} {len(got):<5} {len(form):<8} {len(close):<14} {len(two_se)}"
            )


if __name__ == "__main__":
    main_bench()
