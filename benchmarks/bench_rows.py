"""How discover scales with the rows of a CSV: 500, 5k, 50k and 200k training rows of a
3-input law (``k = A*exp(-Ea/T)``, 20% more rows as test rows), each run in a fresh process.

Prints wall time, peak memory (the child's maximum resident set) and the formula per size,
and the time as a ratio against the 500-row run measured in the same invocation.

    .venv/bin/python benchmarks/bench_rows.py [--sizes 500,5000,50000,200000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_table(path: Path, n_train: int, seed: int = 0) -> None:
    n = int(round(n_train / 0.8))  # csv_problem keeps 20% of the rows as test rows
    rng = np.random.default_rng(seed)
    a, ea, t = rng.uniform(1, 3, n), rng.uniform(0.5, 2, n), rng.uniform(0.5, 2, n)
    table = np.column_stack([a, ea, t, a * np.exp(-ea / t)])
    np.savetxt(path, table, delimiter=",", header="A,Ea,T,k", comments="", fmt="%.8g")


def run(csv: Path, out: Path) -> tuple[float, float, dict]:
    """Seconds, peak resident MB and the report of one discover run in a fresh process."""
    argv = [sys.executable, "-m", "emp_kan.app.cli", "discover", "--csv", str(csv)]
    argv += ["--target", "k", "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"discover failed on {csv}: {child.stderr.read().decode()[-500:]}")
    peak_mb = usage.ru_maxrss / 1024  # kB on Linux
    return seconds, peak_mb, json.loads((out / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,5000,50000,200000")
    parser.add_argument("--out", default=None, help="folder for the tables and reports")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = Path(args.out or tempfile.mkdtemp(prefix="bench-rows-"))
    folder.mkdir(parents=True, exist_ok=True)
    base = None
    print(f"{'train rows':>10} {'seconds':>8} {'x 500 rows':>10} {'peak MB':>8}  formula (EMP)")
    for n in sizes:
        csv = folder / f"rows-{n}.csv"
        write_table(csv, n)
        seconds, peak, report = run(csv, folder / f"report-{n}")
        base = seconds if base is None else base
        rows = report.get("rows", {})
        print(
            f"{n:>10} {seconds:>8.1f} {seconds / base:>10.2f} {peak:>8.0f}  {report['formula']}"
            f"  (trained on {rows.get('trained_on', n)} rows)"
        )


if __name__ == "__main__":
    main()
