"""``python -m emp_kan.app.precompile``: compile emp_kan's loops once and keep their machine code
beside their modules (see :mod:`emp_kan._runtime.jit`), so that later processes load it instead of
compiling it (about 2 s per process that trains, as much again for the product search).

bootstrap.sh runs it as part of the install. It writes only into emp_kan's own
``__pycache__`` folders, prints nothing, and exits 0; run it again after editing a module with
compiled loops (a stale entry is simply not used).
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_COMPILED_MODULES = (
    "emp_kan.kan.fast.kernels",
    "emp_kan.kan.fast.optim",
    "emp_kan.symbolic.products.kernels",
)


def main() -> int:
    """Compile every loop on a small discovery (both methods, every route, the product search)
    and one fit of another spline order; returns the exit code."""
    from emp_kan._runtime import jit as _jit

    early = [name for name in _COMPILED_MODULES if name in sys.modules]
    if early:
        raise RuntimeError(
            f"{', '.join(early)} imported before the request to keep compiled "
            "code; run python -m emp_kan.app.precompile in a fresh process"
        )
    _jit.keep_compiled_code()
    # Only now: these import the compiled loops, which must load after the request above.
    from emp_kan.data.problems import formula_problem
    from emp_kan.discovery.config import DiscoverConfig
    from emp_kan.discovery.discover import discover
    from emp_kan.kan import adapter

    problem = formula_problem("a*sin(b)", "a=0.5:2,b=0.5:3", samples=120)
    discover(
        problem,
        DiscoverConfig(
            hidden=(2,), grid=3, steps=3, round_steps=2, rounds=1, workers=1, all_routes=True
        ),
    )
    model = adapter.make_kan([2, 2, 1], grid=3, k=2, seed=0)
    adapter.fit(model, problem.dataset, 2, 1e-3, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
