"""Read a bench's results.jsonl: per-method figures, and EMP's misses grouped by the law's shape.

Run: ``.venv/bin/python benchmarks/analyse_bench.py RESULTS.jsonl [--method emp] [--per-equation]``

Prints markdown. Shapes, from the true law's expression tree:

* ``monomial``: a product or ratio of powers of the variables (``q/(4 pi epsilon r^2)``);
* ``monomial x function``: a monomial times functions of monomials (``n0 exp(-m g x/(k T))``);
* ``sum``: a sum at the top (``m c^2 + p v``);
* ``function of a sum``: a sum (or difference) inside a power, root, quotient or function
  (``1/(1/d1 + n/d2)``, ``sqrt(x^2 + y^2)``).

What went wrong with a miss, in the order checked:

* ``failed``: the task raised;
* ``splines inaccurate``: the pruned KAN itself is off (spline test R^2 below 0.999, from its
  RMSE and the formula's R^2);
* ``variable lost``: the formula lacks a variable the law uses (pruned away, or dropped);
* ``symbolic stage inaccurate``: good splines, but the formula's test R^2 is below 0.999;
* ``accurate, not the law``: test R^2 >= 0.999 but another expression (constants or form).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter, defaultdict

import sympy as sp

from emp_kan.data.formula_parse import parse_formula

SHAPES = ("monomial", "monomial x function", "sum", "function of a sum")


def _parse(text: str) -> sp.Expr:
    return parse_formula(text, max_length=100000)


def shape(truth: str) -> str:
    expr = _parse(truth)
    if isinstance(expr, sp.Add):
        return "sum"
    if any(isinstance(node, sp.Add) for node in sp.preorder_traversal(expr)):
        return "function of a sum"
    if any(isinstance(node, sp.Function) for node in sp.preorder_traversal(expr)):
        return "monomial x function"
    return "monomial"


def _spline_r2(row: dict) -> float | None:
    """The pruned KAN's test R^2, from its RMSE and the formula's RMSE and R^2 (same rows)."""
    s, f, r2 = row.get("spline_test_rmse"), row.get("test_rmse"), row.get("test_r2")
    if None in (s, f, r2) or f == 0 or r2 >= 1:
        return None
    variance = f**2 / (1 - r2)
    return 1 - s**2 / variance


def what_went_wrong(row: dict) -> str:
    if "error" in row:
        return "failed"
    spline_r2 = _spline_r2(row)
    if spline_r2 is not None and spline_r2 < 0.999:
        return "splines inaccurate"
    truth_vars = {str(s) for s in _parse(row["truth"]).free_symbols}
    try:
        found_vars = {str(s) for s in _parse(row["formula"]).free_symbols}
    except ValueError:
        found_vars = truth_vars
    if truth_vars - found_vars:
        return "variable lost"
    if (row.get("test_r2") or 0) < 0.999:
        return "symbolic stage inaccurate"
    return "accurate, not the law"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--method", default="emp", help="whose misses to group (default: emp)")
    parser.add_argument("--per-equation", action="store_true", help="add a row per equation")
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.results, encoding="utf-8") if line.strip()]
    methods = [
        m for m in ("emp", "threshold", "pykan", "operon") if any(r["method"] == m for r in rows)
    ]
    by_eq: dict[int, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        by_eq[r["equation"]][r["method"]] = r
    shapes = {eq: shape(next(iter(rs.values()))["truth"]) for eq, rs in by_eq.items()}

    print(
        "| method | tasks | failed | exact | exact rate | test R^2 > 0.999 | median edges "
        "| median formula RMSE | median s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        ok = [r for r in mine if "error" not in r]
        edges = [r["edges"] for r in ok if r.get("edges") is not None]
        rmse = [r["test_rmse"] for r in ok if r.get("test_rmse") is not None]
        exact = sum(bool(r.get("exact")) for r in ok)
        accurate = sum((r.get("test_r2") or 0) > 0.999 for r in ok)
        seconds = statistics.median(r["seconds"] for r in mine)
        print(
            f"| {m} | {len(mine)} | {len(mine) - len(ok)} | {exact} "
            f"| {100 * exact / len(mine):.1f}% | {100 * accurate / len(mine):.1f}% "
            f"| {statistics.median(edges) if edges else '-'} "
            f"| {statistics.median(rmse):.2e} | {seconds:.1f} |"
        )

    print("\nExact recoveries by the law's shape:\n")
    print("| shape | laws | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for s in SHAPES:
        eqs = [eq for eq in by_eq if shapes[eq] == s]
        cells = [str(sum(bool(by_eq[eq].get(m, {}).get("exact")) for eq in eqs)) for m in methods]
        print(f"| {s} | {len(eqs)} | " + " | ".join(cells) + " |")

    print(f"\n{args.method}'s misses by shape and by what went wrong:\n")
    causes = (
        "failed",
        "splines inaccurate",
        "variable lost",
        "symbolic stage inaccurate",
        "accurate, not the law",
    )
    print("| shape | misses | " + " | ".join(causes) + " |")
    print("|---|---|" + "---|" * len(causes))
    examples: dict[tuple[str, str], list[int]] = defaultdict(list)
    for s in SHAPES:
        tally: Counter = Counter()
        for eq in sorted(by_eq):
            row = by_eq[eq].get(args.method)
            if shapes[eq] != s or row is None or row.get("exact"):
                continue
            cause = what_went_wrong(row)
            tally[cause] += 1
            examples[s, cause].append(eq)
        print(
            f"| {s} | {sum(tally.values())} | " + " | ".join(str(tally[c]) for c in causes) + " |"
        )
    print("\nEquations per cell:\n")
    for (s, cause), eqs in sorted(examples.items()):
        print(f"- {s}, {cause}: {', '.join(map(str, eqs))}")
    if args.per_equation:
        print(
            "\nPer equation (exact: yes / - ; edges and formula test RMSE of the KAN methods; "
            "seconds):\n"
        )
        head = " | ".join(
            f"{m} exact | {m} edges | {m} RMSE | {m} s"
            if m in ("emp", "threshold")
            else f"{m} exact | {m} RMSE | {m} s"
            for m in methods
        )
        print(f"| eq | law | shape | {head} |")
        print(
            "|---|---|---|" + "---|" * sum(4 if m in ("emp", "threshold") else 3 for m in methods)
        )
        for eq in sorted(by_eq):
            cells = []
            for m in methods:
                r = by_eq[eq].get(m)
                if r is None:
                    cells += ["", "", "", ""] if m in ("emp", "threshold") else ["", "", ""]
                    continue
                exact = "failed" if "error" in r else ("yes" if r.get("exact") else "-")
                rmse = "-" if r.get("test_rmse") is None else f"{r['test_rmse']:.1e}"
                cells.append(exact)
                if m in ("emp", "threshold"):
                    cells.append(str(r.get("edges", "-")))
                cells += [rmse, f"{r['seconds']:.0f}"]
            truth = next(iter(by_eq[eq].values()))["truth"]
            print(f"| {eq} | `{truth}` | {shapes[eq]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
