"""Numbers as JSON allows them."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_or_none"]


def finite_or_none(x: Any) -> float | None:
    """``x`` as a float, or None where it is None, NaN or infinite (JSON has no such numbers)."""
    return None if x is None or not math.isfinite(x) else float(x)
