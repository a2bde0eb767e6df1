"""``equations_``: the candidate formulas a fit compared, as a DataFrame (PySR's attribute)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from emp_kan._runtime.numbers import finite_or_none

__all__ = ["EQUATION_COLUMNS", "constants_frame", "equations_frame", "equations_rows"]

EQUATION_COLUMNS = [
    "candidate",
    "route",
    "equation",
    "sympy_format",
    "complexity",
    "val_rmse",
    "edges",
    "chosen",
]


def equations_frame(rows: list[dict[str, Any]], expressions: list[Any]) -> pd.DataFrame:
    """One row per candidate, in the order they were compared, with :data:`EQUATION_COLUMNS`.

    Parameters
    ----------
    rows : list of dict
        A run's ``front`` entries (``candidate``, ``route``, ``chosen``, ``formula``,
        ``complexity``, ``val_rmse``, ``edges``).
    expressions : list of sympy.Expr
        Each candidate's formula.
    """
    records = [
        {
            "candidate": row["candidate"],
            "route": row["route"],
            "equation": row["formula"],
            "sympy_format": expr,
            "complexity": row["complexity"],
            "val_rmse": float("nan") if row["val_rmse"] is None else row["val_rmse"],
            "edges": row["edges"],
            "chosen": bool(row["chosen"]),
        }
        for row, expr in zip(rows, expressions, strict=True)
    ]
    return pd.DataFrame.from_records(records, columns=EQUATION_COLUMNS)


def equations_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame`` as the ``front`` rows :func:`equations_frame` reads (without the sympy
    column: ``formula`` holds each formula's text)."""
    return [
        {
            "candidate": str(row.candidate),
            "route": str(row.route),
            "formula": row.equation,
            "complexity": None if row.complexity is None else int(row.complexity),
            "val_rmse": finite_or_none(float(row.val_rmse)),
            "edges": int(row.edges),
            "chosen": bool(row.chosen),
        }
        for row in frame.itertuples(index=False)
    ]


def constants_frame(constants: list[dict[str, Any]]) -> Any:
    """A formula's constants (``[{"value", "std_error"}]``, ``std_error`` None where unknown;
    with units also ``"units"``) as a pandas DataFrame with columns ``value`` and
    ``std_error`` (NaN where unknown), and ``units`` when they have units."""
    columns = {
        "value": [float(c["value"]) for c in constants],
        "std_error": [
            float("nan") if c.get("std_error") is None else float(c["std_error"]) for c in constants
        ],
    }
    if any("units" in c for c in constants):
        columns["units"] = [c.get("units") for c in constants]
    return pd.DataFrame(columns)
