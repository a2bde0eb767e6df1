"""Default ``emp-kan discover`` wall time: this tree against another commit, in one run.

Run: ``.venv/bin/python benchmarks/bench_discover.py [--base COMMIT] [--repeats 2]``

The base commit is checked out into a temporary git worktree (removed afterwards) and both
trees run ``emp-kan discover --no-progress --out DIR`` (Feynman eq. 37, both methods) in fresh
processes with the same interpreter, alternating. This tree runs as installed by bootstrap.sh:
its loops compiled ahead (``python -m emp_kan.app.precompile`` is run on it first). A third
column runs this tree's HEAD commit from a fresh worktree with ``PYTHONDONTWRITEBYTECODE=1``,
so that it compiles its loops in every process as a tree without that step would. The base
runs as installed too when it has that step (``emp_kan/app/precompile.py``), and compiling in
every process otherwise; the line printed says which. Prints the best time of each and the
ratios base / this tree.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from _worktree import ROOT, checked_out  # benchmarks/, beside this script


def _knows(tree: Path, flag: str) -> bool:
    """Whether the CLI of ``tree`` defines ``flag`` (its parser's source mentions it)."""
    return any(flag in p.read_text() for p in (tree / "emp_kan").rglob("cli.py"))


def run(tree: Path, out: Path, **env_extra: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree), **env_extra)
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "emp_kan.app.cli" if (tree / "emp_kan/app").exists() else "emp_kan.cli",
            "discover",
            # the flag that hides progress bars was --quiet in older trees
            "--no-progress" if _knows(tree, "--no-progress") else "--quiet",
            "--out",
            str(out),
        ],
        cwd=out.parent,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="d50f3a6", help="commit to compare against")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-m", "emp_kan.app.precompile"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=True,
    )
    with checked_out(args.base) as base, checked_out("HEAD") as cold:
        installed = (base / "emp_kan/app/precompile.py").exists()
        if installed:  # its loops compiled into its own (temporary) worktree
            subprocess.run(
                [sys.executable, "-m", "emp_kan.app.precompile"],
                cwd=base,
                env=dict(os.environ, PYTHONPATH=str(base)),
                check=True,
            )
        times: dict[str, list[float]] = {"base": [], "this": [], "cold": []}
        for k in range(args.repeats):
            for name, tree, extra in (
                ("base", base, {}),
                ("this", ROOT, {}),
                ("cold", cold, {"PYTHONDONTWRITEBYTECODE": "1"}),
            ):
                times[name].append(run(tree, base.parent / f"out-{name}-{k}", **extra))
    b, t, c = (min(times[name]) for name in ("base", "this", "cold"))
    print(
        f"default discover: base {args.base} "
        f"({'as installed' if installed else 'compiling in every process'}) {b:.1f} s, "
        f"this tree {t:.1f} s (ratio "
        f"{b / t:.2f}x); HEAD compiling in every process {c:.1f} s (ratio {b / c:.2f}x)"
    )


if __name__ == "__main__":
    main()
