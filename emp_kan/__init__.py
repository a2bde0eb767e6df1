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

logging.getLogger("emp_kan").addHandler(logging.NullHandler())

__all__ = [
    "EMPSelection",
    "__version__",
    "effective_number",
    "emp_mask",
    "emp_select",
    "mass_lower_bound",
    "preserved_mass",
    "retention_count",
]
