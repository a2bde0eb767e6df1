"""Data of any magnitude: inputs and labels rescaled by powers of ten before training, and
every formula mapped back to the data's own units exactly.

A KAN trains in float32, whose losses overflow for labels near 1e20 and whose splines sit on
grids built for values near 1; Newton's gravity in SI units (forces near 1e25, masses near
1e24) diverged at the first step. A column whose root mean square is far from 1 is divided by
the power of ten nearest to it; the law found in the scaled columns, ``y / s_y = f(x_1 / s_1,
...)``, is the law ``y = s_y * f(x_1 / s_1, ...)`` of the data, with every constant carried
through by sympy. Columns already near 1 are left as they are, so data that needs no scaling
is treated exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import sympy as sp
import torch

__all__ = ["Scales", "column_scale", "training_view"]

# A column whose root mean square lies in this range is left unscaled.
_NEAR_ONE = (1e-2, 1e2)


def column_scale(values: np.ndarray) -> float:
    """The power of ten a column ``(n,)`` is divided by: 1.0 when its root mean square is
    within [1e-2, 1e2] (or zero), else the power of ten nearest to it."""
    rms = float(np.sqrt(np.mean(np.square(values, dtype=np.float64))))
    if not math.isfinite(rms) or rms == 0.0 or _NEAR_ONE[0] <= rms <= _NEAR_ONE[1]:
        return 1.0
    return 10.0 ** round(math.log10(rms))


@dataclass(frozen=True)
class Scales:
    """Per-input scales ``(w_0,)`` and the label's scale (powers of ten; 1.0: unscaled)."""

    inputs: tuple[float, ...]
    label: float

    @classmethod
    def of(cls, dataset: dict[str, torch.Tensor]) -> Scales:
        """The scales of a pykan dataset, from its training rows only."""
        x = dataset["train_input"].detach().double().numpy()
        y = dataset["train_label"].detach().double().numpy()
        return cls(tuple(column_scale(x[:, i]) for i in range(x.shape[1])), column_scale(y))

    @property
    def identity(self) -> bool:
        return self.label == 1.0 and all(s == 1.0 for s in self.inputs)

    def apply(self, dataset: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The dataset in scaled units, as float32 (the KAN's dtype), computed in float64."""
        inputs = torch.tensor(self.inputs, dtype=torch.float64)
        out = {}
        for key, value in dataset.items():
            value = value.double()
            value = value / inputs if key.endswith("input") else value / self.label
            out[key] = value.float()
        return out

    def check_representable(
        self,
        dataset: dict[str, torch.Tensor],
        scaled: dict[str, torch.Tensor],
        names: Sequence[str],
        target: str = "y",
    ) -> None:
        """ValueError naming the columns (inputs ``names``, label ``target``) whose values,
        ``scaled`` (:meth:`apply` of ``dataset``), do not fit float32 (beyond its largest
        number, or nonzero below its smallest)."""
        bad: list[str] = []
        for key, value in scaled.items():
            lost = (value == 0) & (dataset[key] != 0)
            wrong = (~torch.isfinite(value) | lost).any(dim=0).tolist()
            columns = names if key.endswith("input") else [target]
            bad += [c for c, w in zip(columns, wrong, strict=True) if w and c not in bad]
        if bad:
            raise ValueError(
                f"the values of {', '.join(map(repr, bad))} span too many orders of magnitude "
                "to train on, even rescaled by a power of ten; log-transform those columns first"
            )

    def to_data_units(self, expr: Any, symbols: Sequence[sp.Symbol]) -> Any:
        """A formula of the scaled columns as one of the data's: ``s_y * f(x_1 / s_1, ...)``."""
        if self.identity:
            return expr
        swap = {s: s / sp.Float(k) for s, k in zip(symbols, self.inputs, strict=True) if k != 1}
        return (
            sp.Float(self.label) * expr.xreplace(swap) if self.label != 1 else expr.xreplace(swap)
        )


def training_view(problem: Any) -> tuple[Scales, Any]:
    """The scales of ``problem``'s training rows and the problem the KAN trains on: its rows
    divided by them, as float32. A rescaled problem has no truth: exactness is judged on the
    formula mapped back to the data's units. ValueError before any work for data that no
    rescaling brings into float32."""
    scales = Scales.of(problem.dataset)
    scaled = scales.apply(problem.dataset)
    scales.check_representable(problem.dataset, scaled, problem.variables, problem.target)
    work = replace(problem, dataset=scaled)
    return scales, work if scales.identity else replace(work, truth=None)
