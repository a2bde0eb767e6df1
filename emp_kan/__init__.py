"""emp_kan: Effective Model Pruning for Kolmogorov-Arnold Networks.

The EMP core (:mod:`emp_kan.core`) is pure maths on score arrays; the pykan-facing parts import
pykan lazily, so ``import emp_kan`` stays light.
"""

from __future__ import annotations

import logging

from emp_kan.core import (
    EMPSelection,
    effective_number,
    emp_mask,
    emp_select,
    mass_lower_bound,
    preserved_mass,
    retention_count,
)

__version__ = "0.1.0"

# The pykan-facing names import torch and pykan; load them on first use so that the pure core
# stays light.
_LAZY = {
    "EMPPruner": "emp_kan.pruning.pruners",
    "ThresholdPruner": "emp_kan.pruning.pruners",
    "LayerDecision": "emp_kan.pruning.pruners",
    "KANScores": "emp_kan.kan.scores",
    "compute_scores": "emp_kan.kan.scores",
    "PruneResult": "emp_kan.pruning.rounds",
    "RoundRecord": "emp_kan.pruning.rounds",
    "prune_rounds": "emp_kan.pruning.rounds",
    "prune_step": "emp_kan.pruning.rounds",
    "train": "emp_kan.pruning.rounds",
    "make_kan": "emp_kan.kan.adapter",
    "SymbolicFormula": "emp_kan.symbolic.search",
    "fit_formula": "emp_kan.symbolic.search",
    "fit_edge": "emp_kan.symbolic.edge_fit",
    "is_exact_recovery": "emp_kan.symbolic.recovery",
    "to_networkx": "emp_kan.draw.graph",
    "write_graph": "emp_kan.draw.graph",
    "read_graph": "emp_kan.draw.graph",
    "edge_curves": "emp_kan.draw.graph",
    "plot_graph": "emp_kan.draw.plotting",
    "plot_history": "emp_kan.draw.plotting",
    "plot_scores": "emp_kan.draw.plotting",
    "EMPKANRegressor": "emp_kan.estimator",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emp_kan' has no attribute {name!r}")


logging.getLogger("emp_kan").addHandler(logging.NullHandler())

__all__ = [
    *_LAZY,
    "EMPSelection",
    "__version__",
    "effective_number",
    "emp_mask",
    "emp_select",
    "mass_lower_bound",
    "preserved_mass",
    "retention_count",
]
