"""Time emp_mask against a bare top-k selection of the same k on the same data.

Run: ``.venv/bin/python benchmarks/bench_emp_mask.py``

For 10^6 and 10^7 float32 scores, numpy and torch (CPU), it prints the median wall time of
``emp_mask`` (N_eff, nu, the exact top-nu with stable ties, all input checks) and of a bare
selection of the same k: ``numpy.argpartition`` and ``torch.topk`` (the issue's baselines), and,
for reference, the cheaper unsorted ``torch.topk(sorted=False)``. Ratios below 1 mean emp_mask is
faster than the bare selection.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from emp_kan import emp_mask, retention_count


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}")
    header = ("n", "kind", "k", "emp_mask s", "baseline", "base s", "ratio")
    print("{:>9} {:6} {:>9} {:>11} {:>24} {:>9} {:>6}".format(*header))
    for n in (10**6, 10**7):
        scores = rng.lognormal(size=n).astype(np.float32)
        k = retention_count(scores)
        repeats = 7 if n == 10**6 else 3
        t_emp = median_seconds(lambda s=scores: emp_mask(s), repeats)
        t_arg = median_seconds(lambda s=scores, k=k: np.argpartition(-s, k - 1)[:k], repeats)
        print(
            f"{n:9d} {'numpy':6} {k:9d} {t_emp:11.4f} {'numpy.argpartition':>24} "
            f"{t_arg:9.4f} {t_emp / t_arg:6.2f}"
        )
        tensor = torch.from_numpy(scores)
        t_emp_t = median_seconds(lambda t=tensor: emp_mask(t), repeats)
        t_topk = median_seconds(lambda t=tensor, k=k: torch.topk(t, k), repeats)
        t_topk_u = median_seconds(lambda t=tensor, k=k: torch.topk(t, k, sorted=False), repeats)
        print(
            f"{n:9d} {'torch':6} {k:9d} {t_emp_t:11.4f} {'torch.topk':>24} "
            f"{t_topk:9.4f} {t_emp_t / t_topk:6.2f}"
        )
        print(
            f"{n:9d} {'torch':6} {k:9d} {t_emp_t:11.4f} {'torch.topk(sorted=False)':>24} "
            f"{t_topk_u:9.4f} {t_emp_t / t_topk_u:6.2f}"
        )


if __name__ == "__main__":
    main()
