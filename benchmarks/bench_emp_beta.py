"""Why EMP loses its first round, and what a gentler step does: beta 1 vs 2 against thresholds.

Run: ``.venv/bin/python benchmarks/bench_emp_beta.py [--equations 28,40,46,16,37,25,8,15]``

For each Feynman equation, one [n, 5, 1] KAN is trained (300/300 samples, 40 LBFGS steps,
lamb 1e-3); from it, each rule runs 3 rounds x 15 steps (tol 0.5) and a 40-step polish. Prints
edges kept, the final test RMSE and the number of rejected attempts ("rb").
"""

from __future__ import annotations

import argparse

import emp_kan
from emp_kan.data.problems import feynman_problem
from emp_kan.pruning.schedule import Schedule

RULES = {
    "thresholds": lambda: emp_kan.ThresholdPruner(),
    "emp both b1": lambda: emp_kan.EMPPruner(target="both"),
    "emp edges b1": lambda: emp_kan.EMPPruner(target="edges"),
    "emp edges b2": lambda: emp_kan.EMPPruner(target="edges", beta=2.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--equations", default="28,40,46,16,37,25,8,15")
    args = parser.parse_args()
    for eq in map(int, args.equations.split(",")):
        problem = feynman_problem(eq, 300, 0)
        model = emp_kan.make_kan([len(problem.variables), 5, 1], seed=0)
        trained = emp_kan.train(model, problem.dataset, steps=40, lamb=1e-3)
        cells = [f"{eq:3d}"]
        for name, make in RULES.items():
            res = emp_kan.prune_rounds(
                trained,
                problem.dataset,
                make(),
                rounds=3,
                steps=15,
                lamb=1e-3,
                schedule=Schedule(tol=0.5),
                initial_steps=0,
                final_steps=40,
            )
            rolled = res.rejected_attempts
            cells.append(f"{name}: {res.edges_alive}e {res.final_test_rmse:.1e} rb{rolled}")
        print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
