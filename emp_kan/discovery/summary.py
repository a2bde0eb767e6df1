"""The report's plain values: numbers as JSON allows them, and the versions behind them."""

from __future__ import annotations

import platform

import torch

from emp_kan import __version__

__all__ = ["finite_or_none", "versions"]


def finite_or_none(x: float) -> float | None:
    return None if x is None or x != x or x in (float("inf"), float("-inf")) else float(x)


def versions() -> dict[str, str]:
    """Versions of the parts that decide the numbers."""
    import numpy
    import sympy

    try:
        from importlib.metadata import version

        pykan = version("pykan")
    except Exception:  # not installed as a distribution
        pykan = "unknown"
    return {
        "emp_kan": __version__,
        "pykan": pykan,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sympy": sympy.__version__,
        "python": platform.python_version(),
    }
