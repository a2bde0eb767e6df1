"""Exact recovery on 28 textbook laws of the shapes the Feynman list lacks: polynomials of one
variable up to degree 5, one input through two or more functions, sums of products, rational
functions, right-hand sides of textbook ODE systems and functions of sums.

None is from the Feynman list or from the classic SR suites (Nguyen, Keijzer, Korns, Livermore,
Strogatz), which stay an independent check. Each law is one default ``discover``
(``DiscoverConfig()``: [n, 5, 1] KAN, 500 training and 500 test rows, seed 0), EMP and pykan's
thresholds from the same trained models; with ``--methods`` also RILS-ROLS (``rils``, the
optional extra) on the same training rows. Exactness is the SRBench rule
(:func:`emp_kan.is_exact_recovery`). Rows are appended to ``--out`` as they finish; a rerun skips
the laws already there, so a killed run loses nothing finished.

    .venv/bin/python benchmarks/bench_sum_laws.py [--out FILE.jsonl] [--only 1,2]
        [--candidates all|kan] [--methods emp,threshold,rils] [--noise 0.01]

``--noise SIGMA`` adds Gaussian noise of SIGMA x the labels' spread to the training labels (seeded,
the same rows for every method; the test labels stay clean).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from emp_kan.data.problems import formula_problem, with_label_noise
from emp_kan.discovery.config import DiscoverConfig
from emp_kan.discovery.discover import discover

LAWS = [
    # (shape, what it is, formula, ranges)
    ("polynomial", "logistic growth rate", "0.5*N*(1 - N/10)", "N=0:10"),
    ("polynomial", "tilted double-well potential", "x**4/4 - 3*x**2/2 + 3*x/10", "x=-2.5:2.5"),
    ("polynomial", "Chebyshev polynomial T5", "16*x**5 - 20*x**3 + 5*x", "x=-1:1"),
    ("polynomial", "cantilever deflection, uniform load", "x**2*(x**2 - 4*x + 6)/24", "x=0:1"),
    ("polynomial", "anharmonic restoring force", "-x - x**3/2", "x=-2:2"),
    ("two functions", "Morse potential", "(1 - exp(-3*(r - 1)/2))**2", "r=0.6:3"),
    ("two functions", "Shomate heat capacity", "2 + T/2 - T**2/10 + 4/(5*T**2)", "T=0.5:3"),
    ("two functions", "square wave, two harmonics", "sin(x) + sin(3*x)/3", "x=-3:3"),
    ("two functions", "charging with drift", "1 - exp(-t) + t/5", "t=0:4"),
    ("two functions", "Planck spectrum shape", "x**3/(exp(x) - 1)", "x=0.5:5"),
    ("two functions", "Steinhart-Hart inverse", "1 + log(R)/2 + log(R)**3/10", "R=1:20"),
    ("two functions", "Gompertz growth rate", "N*log(10/N)/2", "N=0.5:10"),
    ("rational", "Michaelis-Menten rate", "2*S/(S + 1/2)", "S=0:5"),
    ("rational", "Hill equation, n = 2", "S**2/(S**2 + 1)", "S=0:4"),
    ("rational", "virial equation of state", "1 + 1/(2*V) + 1/(5*V**2)", "V=0.5:3"),
    ("rational", "van der Waals pressure", "T/(V - 1/2) - 2/V**2", "T=1:3,V=1:3"),
    ("sum of products", "projectile height", "v*t - 49*t**2/10", "v=5:15,t=0:2"),
    ("sum of products", "pendulum energy", "v**2/2 + 49*(1 - cos(theta))/5", "v=-2:2,theta=-2:2"),
    (
        "sum of products",
        "kinetic plus potential energy",
        "m*v**2/2 + 49*m*h/5",
        "m=1:3,v=0:3,h=0:2",
    ),
    ("sum of products", "spring-damper force", "2*x + v/2", "x=-1:1,v=-2:2"),
    ("ODE right-hand side", "Lotka-Volterra prey", "11*x/10 - 2*x*y/5", "x=0:5,y=0:5"),
    ("ODE right-hand side", "SIR infected", "3*S*I/10 - I/10", "S=0:1,I=0:1"),
    ("ODE right-hand side", "Van der Pol", "3*(1 - x**2)*v/2 - x", "x=-2:2,v=-2:2"),
    ("ODE right-hand side", "Duffing, unforced", "-x - x**3/2 - v/5", "x=-2:2,v=-2:2"),
    ("ODE right-hand side", "Brusselator", "1 + x**2*y - 4*x", "x=0:3,y=0:3"),
    ("function of a sum", "Gaussian bump", "exp(-(x**2 + y**2)/2)", "x=-2:2,y=-2:2"),
    (
        "function of a sum",
        "distance to a point off the plane",
        "sqrt(x**2 + y**2 + 1)",
        "x=-2:2,y=-2:2",
    ),
    ("function of a sum", "Lorentzian of two detunings", "1/(1 + x + y**2)", "x=0:2,y=-1:1"),
]


def _row(number: int, law: tuple, config: DiscoverConfig, methods: list[str]) -> dict:
    shape, name, formula, ranges = law
    problem = formula_problem(formula, ranges, samples=500, seed=0)
    start = time.perf_counter()
    report, _ = discover(problem, config)
    row = {
        "law": number,
        "shape": shape,
        "name": name,
        "truth": formula,
        "seconds": time.perf_counter() - start,
    }
    keys = ("formula", "exact", "test_rmse", "spline_test_rmse", "candidate", "family")
    for method, part in (("emp", report), ("threshold", report.get("baseline"))):
        if part is not None:
            row[method] = {key: part.get(key) for key in keys}
            row[method]["edges"] = part["edges"]["final"]
            row[method]["structure"] = part.get("structure")
    if "rils" in methods:
        from emp_kan.baselines.rils import rils_workflow

        # the same noisy training rows discover drew (with_label_noise, seed 0)
        row["rils"] = rils_workflow(with_label_noise(problem, config.noise, 0), seed=0)
    return row


def _summary(rows: list[dict]) -> None:
    for method in ("emp", "threshold", "rils"):
        part = [r[method] for r in rows if method in r]
        if not part:
            continue
        exact = sum(bool(p["exact"]) for p in part)
        within = sum(
            1
            for p in part
            if p.get("test_rmse") is not None
            and p.get("spline_test_rmse") is not None
            and p["test_rmse"] <= 2 * p["spline_test_rmse"]
        )
        line = f"{method}: exact {exact}/{len(part)}"
        if method != "rils":
            line += f"; formula test RMSE <= 2x the splines' on {within}/{len(part)}"
        print(line)
    seconds = [r["seconds"] for r in rows]
    print(f"discover seconds: median {statistics.median(seconds):.1f}, max {max(seconds):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/sum-laws.jsonl")
    parser.add_argument("--only", default="", help="law numbers (1-based), e.g. 1,4")
    parser.add_argument("--candidates", default="all", choices=("all", "kan"))
    parser.add_argument("--methods", default="emp,threshold", help="add rils for RILS-ROLS")
    parser.add_argument("--noise", type=float, default=0.0, help="label noise, share of std")
    args = parser.parse_args()
    methods = args.methods.split(",")
    config = replace(DiscoverConfig(), candidates=args.candidates, noise=args.noise)
    out = Path(args.out)
    done = (
        {json.loads(line)["law"] for line in out.read_text().splitlines()}
        if out.exists()
        else set()
    )
    wanted = {int(v) for v in args.only.split(",") if v} or set(range(1, len(LAWS) + 1))
    for number, law in enumerate(LAWS, start=1):
        if number not in wanted or number in done:
            continue
        row = _row(number, law, config, methods)
        with out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        emp = row["emp"]
        print(
            f"{number:2d} {law[0]:20s} {law[2][:28]:28s} EMP {emp['exact']!s:5s} "
            f"{str(emp['formula'])[:44]:44s} {row['seconds']:.0f} s"
            + (f" rils {row['rils']['exact']}" if "rils" in row else ""),
            flush=True,
        )
    _summary([json.loads(line) for line in out.read_text().splitlines()])


if __name__ == "__main__":
    main()
