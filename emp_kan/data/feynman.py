"""pykan's Feynman equations by number, and the entries of pykan 0.2.8 that are broken."""

from __future__ import annotations

from typing import Any

import numpy as np

from emp_kan._runtime.threads import preserved_global_rng
from emp_kan.kan._pykan import import_pykan, quiet_pykan

__all__ = ["BROKEN_FEYNMAN", "feynman_entry"]


# pykan's own Feynman table has three entries that disagree with their formula or fail.
BROKEN_FEYNMAN = {
    20: "entry 20 (I.16.6) computes u*v where its formula says u+v",
    113: "entry 113 swaps x and y between its data and its formula",
    114: "entry 114 raises IndexError inside pykan",
}


def feynman_entry(number: int) -> tuple[list[str], Any, Any, list[tuple[float, float]]]:
    """pykan's Feynman equation ``number`` (1-120): (names, sympy truth, torch fn, ranges).

    Raises ValueError for numbers outside 1-120 and for the broken entries 20, 113 and 114.
    """
    if isinstance(number, bool) or not isinstance(number, (int, np.integer)):
        raise ValueError(f"Feynman equations are numbered 1-120, got {number!r}")
    if number in BROKEN_FEYNMAN:
        raise ValueError(f"{BROKEN_FEYNMAN[number]}; pick another equation")
    if not 1 <= number <= 120:
        raise ValueError(f"Feynman equations are numbered 1-120, got {number}")
    import_pykan()
    from kan.feynman import get_feynman_dataset

    with preserved_global_rng(), quiet_pykan():
        symbols, expr, fn, ranges = get_feynman_dataset(int(number))
    symbols = list(symbols) if isinstance(symbols, (list, tuple)) else [symbols]
    names = [str(s) for s in symbols]
    if not isinstance(ranges[0], (list, tuple)):
        ranges = [ranges] * len(names)
    bounds = [(float(lo), float(hi)) for lo, hi in ranges]
    return names, expr, fn, bounds
