"""The formula refits: emp_kan's Levenberg-Marquardt against scipy's ``trf``, on the same refits.

Run: ``.venv/bin/python benchmarks/bench_refit.py [--feynman 37] [--repeats 2]``

Records every ``refit_terms`` call of one default discovery (``workers=1``, both methods), then
replays them all with each solver in this process, alternating, on one thread. Prints the best
seconds of each, their ratio, and how the fits compare: the share of refits where ours reaches a
squared error within 1e-6 (relative) of ``trf``'s or lower, and the median ratio of the two.
"""

from __future__ import annotations

import argparse
import statistics
import time
from warnings import catch_warnings, simplefilter

import numpy as np

from emp_kan.symbolic import formula_terms


def trf(residual_and_jacobian, start, max_nfev):
    """The solver ``refit_terms`` used before our own: scipy's ``least_squares(method="trf")``
    with the exact Jacobian."""
    from scipy.optimize import least_squares

    with catch_warnings():
        simplefilter("ignore")
        return least_squares(
            lambda p: residual_and_jacobian(p)[0],
            start,
            jac=lambda p: residual_and_jacobian(p)[1],
            method="trf",
            max_nfev=max_nfev,
        ).x


def refit_with_trf(terms, consts, x, y, max_nfev: int = 50):
    """``refit_terms`` as it was before our own solver (the same refit, solved by :func:`trf`)."""
    return formula_terms.refit_terms(terms, consts, x, y, max_nfev, solve=trf)


def _sse(terms, consts, x, y) -> float:
    out, _ = formula_terms.evaluate_terms(terms, consts, x)
    with np.errstate(all="ignore"):
        return float(np.sum((out - np.asarray(y, dtype=np.float64).ravel()) ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feynman", type=int, default=37)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from emp_kan._runtime.threads import one_thread
    from emp_kan.data import problems as data
    from emp_kan.discovery import discover
    from emp_kan.discovery.config import DiscoverConfig
    from emp_kan.symbolic import search

    recorded = []
    ours = formula_terms.refit_terms

    def spy(*call, **options):
        recorded.append((call, options))
        return ours(*call, **options)

    search.refit_terms = spy
    try:
        problem = data.feynman_problem(args.feynman, 1000, 0)
        discover.discover(problem, DiscoverConfig(workers=1))
    finally:
        search.refit_terms = ours
    seconds = {"ours": [], "trf": []}
    results = {}
    with one_thread():
        for _ in range(args.repeats):
            for name, refit in (("trf", refit_with_trf), ("ours", ours)):
                start = time.perf_counter()
                results[name] = [refit(*call, **options) for call, options in recorded]
                seconds[name].append(time.perf_counter() - start)
    ratios = []
    for (call, _), a, b in zip(recorded, results["ours"], results["trf"], strict=True):
        x, y = call[2], call[3]
        ratios.append(_sse(*a, x, y) / max(_sse(*b, x, y), 1e-300))
    finite = [r for r in ratios if np.isfinite(r)]
    as_good = sum(r <= 1 + 1e-6 for r in finite)
    best = {name: min(times) for name, times in seconds.items()}
    print(f"Feynman {args.feynman}: {len(recorded)} refits of one default discovery (workers 1)")
    print(
        f"trf {best['trf']:.2f} s, ours {best['ours']:.2f} s, ratio trf / ours "
        f"{best['trf'] / best['ours']:.1f}x (best of {args.repeats})"
    )
    print(
        f"ours as good as trf or better (SSE within 1e-6): {as_good} of {len(finite)}; "
        f"median SSE ours / trf {statistics.median(finite):.4f}, "
        f"worst {max(finite):.3g}, best {min(finite):.3g}"
    )


if __name__ == "__main__":
    main()
