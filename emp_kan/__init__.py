"""emp_kan: Effective Model Pruning for Kolmogorov-Arnold Networks.

The EMP core (:mod:`emp_kan.core`) is pure maths on score arrays; the pykan-facing parts import
pykan lazily, so ``import emp_kan`` stays light.
"""

from __future__ import annotations

import logging
import os

# Torch's CPU build calls MKL, whose default code path rounds matrix products differently with
# the arrays' memory alignment: the same seed then gave two different formulas from one model
# (tests/test_symbolic.py, 2 runs in 6). Conditional numerical reproducibility (the fastest
# branch for this CPU, alignment-independent) takes effect if set before MKL's first call; a
# caller's own setting wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

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

# The user's API. The pykan-facing names import torch and pykan; they load on first use so that
# the pure core stays light. Internals (prune_step, fit_edge, RoundRecord, LayerDecision, ...)
# stay importable from their modules but are not advertised here.
_LAZY = {
    # estimators
    "EMPKANRegressor": "emp_kan.estimators.regressor",
    "EMPKANClassifier": "emp_kan.estimators.classifier",
    # problems and the whole discovery (what `emp-kan discover` runs)
    "feynman_problem": "emp_kan.data.problems",
    "formula_problem": "emp_kan.data.problems",
    "csv_problem": "emp_kan.data.problems",
    "with_units": "emp_kan.data.problems",
    "DiscoverConfig": "emp_kan.discovery.config",
    "discover": "emp_kan.discovery.discover",
    # a KAN built and trained without pykan's side effects
    "make_kan": "emp_kan.kan.adapter",
    "train": "emp_kan.kan.training",
    # scores and pruning
    "KANScores": "emp_kan.kan.scores",
    "compute_scores": "emp_kan.kan.scores",
    "EMPPruner": "emp_kan.pruning.pruners",
    "ThresholdPruner": "emp_kan.pruning.pruners",
    "PruneResult": "emp_kan.pruning.records",
    "prune_rounds": "emp_kan.pruning.rounds",
    "prune_once": "emp_kan.pruning.step",
    # formulas
    "SymbolicFormula": "emp_kan.symbolic.formula",
    "fit_formula": "emp_kan.symbolic.search",
    "is_exact_recovery": "emp_kan.symbolic.recovery",
    "parse_formula": "emp_kan.data.formula_parse",
    "register_function": "emp_kan.symbolic.registry",
    "library_names": "emp_kan.symbolic.registry",
    "DEFAULT_LIBRARY": "emp_kan.symbolic.edge_fit",
    # baselines
    "with_label_noise": "emp_kan.data.problems",
    "Split": "emp_kan.data.split",
    # graphs and pictures
    "to_networkx": "emp_kan.draw.graph",
    "write_graph": "emp_kan.draw.graph",
    "read_graph": "emp_kan.draw.graph",
    "edge_curves": "emp_kan.draw.graph",
    "plot_graph": "emp_kan.draw.plotting",
    "plot_history": "emp_kan.draw.plotting",
    "plot_scores": "emp_kan.draw.plotting",
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
