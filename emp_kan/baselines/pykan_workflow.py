"""pykan's own tutorial workflow (prune, refine, auto_symbolic, symbolic_formula), silent and
file-free: the baseline `emp-kan bench --methods pykan` runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from emp_kan._runtime.threads import preserved_global_rng
from emp_kan.kan._pykan import quiet_pykan
from emp_kan.kan.adapter import forward_pass, make_inert

__all__ = ["auto_symbolic", "pykan_formula", "pykan_prune", "refine"]


def pykan_prune(model: Any, x: torch.Tensor, node_th: float = 1e-2, edge_th: float = 3e-2) -> Any:
    """pykan's ``model.prune(node_th, edge_th)`` on a fresh forward pass over ``x``, file-free.

    The same steps as pykan's ``prune()`` (``prune_node``, re-attribution, ``prune_edge``)
    without its checkpoint log, which would write ``./model`` or crash when it is missing.
    """
    forward_pass(model, x)
    with preserved_global_rng(), quiet_pykan():
        smaller = make_inert(model.prune_node(node_th, log_history=False))
        forward_pass(smaller, x)
        smaller.attribute()
        smaller.prune_edge(edge_th, log_history=False)
    return smaller


def refine(model: Any, new_grid: int, x: torch.Tensor) -> Any:
    """pykan's ``refine(new_grid)`` (a finer spline grid fitted to the old curves), file-free."""
    forward_pass(model, x)
    with preserved_global_rng(), quiet_pykan():
        finer = model.refine(new_grid)
    return make_inert(finer)


def auto_symbolic(model: Any, library: Sequence[str]) -> None:
    """pykan's ``auto_symbolic`` with its defaults and ``lib=library``, silent and file-free."""
    make_inert(model)
    model.symbolic_enabled = True
    with preserved_global_rng(), quiet_pykan():
        model.auto_symbolic(lib=list(library), verbose=0)


def pykan_formula(model: Any, names: Sequence[str]) -> Any:
    """pykan's own ``symbolic_formula`` for output 0, in the given variable names."""
    import warnings

    import sympy

    with quiet_pykan(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pykan converts tensors that require grad
        expr = model.symbolic_formula(var=[sympy.Symbol(n) for n in names])[0][0]
    return expr
