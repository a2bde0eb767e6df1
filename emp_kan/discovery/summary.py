"""The versions of the parts that decide a report's numbers."""

from __future__ import annotations

import platform

import torch

from emp_kan import __version__

__all__ = ["versions"]


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
