"""Dimensional analysis before the KAN: the Buckingham pi groups of a problem with units.

A law ``y = f(x_1, ..., x_n)`` between quantities with units is, by the pi theorem, a law
``y / N(x) = F(pi_1, ..., pi_k)`` between dimensionless numbers: ``N`` is a product of powers
of the inputs with ``y``'s units, each ``pi_i`` a product of powers with no units, and ``k = n -
r`` where ``r`` is the rank of the inputs' dimension matrix. The KAN then learns ``F`` of ``k``
inputs instead of ``f`` of ``n``, and any ``F`` it yields maps back to a dimensionally consistent
law of the inputs.

The basis is chosen deterministically among the sets of ``r`` "repeating" inputs whose
dimensions are independent: every other input ``x_j`` makes one group ``x_j / prod x_R**a``
(so each group keeps one of the user's variables with exponent 1), and the set is the one whose
groups and normaliser have the fewest fractional exponents, then the smallest exponents, then
the one repeating the later inputs (so ``q1/q2`` rather than ``q2/q1``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
import sympy as sp
import torch

from emp_kan.data.units import Dimension, dimension_text, unit_dimensions

__all__ = ["Groups", "buckingham", "dimensionless_view"]


@dataclass(frozen=True)
class Groups:
    """Dimensionless groups of ``variables``: group ``i`` is ``prod_j x_j ** exponents[i][j]``
    (``exponents`` is ``(k, n)``), the label ``y / prod_j x_j ** normaliser[j]``."""

    variables: tuple[str, ...]
    names: tuple[str, ...]
    exponents: tuple[tuple[Fraction, ...], ...]
    normaliser: tuple[Fraction, ...]
    target: str

    @property
    def reduces(self) -> bool:
        """Whether the groups are fewer than the inputs or rescale the label."""
        return len(self.names) < len(self.variables) or any(self.normaliser)

    def _monomial(self, powers: Sequence[Fraction]) -> sp.Expr:
        return sp.Mul(
            *(
                sp.Symbol(v, real=True) ** sp.Rational(p.numerator, p.denominator)
                for v, p in zip(self.variables, powers, strict=True)
                if p
            )
        )

    def group_expressions(self) -> list[sp.Expr]:
        """Each group as a product of powers of the inputs' (real) symbols."""
        return [self._monomial(row) for row in self.exponents]

    def normaliser_expression(self) -> sp.Expr:
        """``N(x)``, the product of powers of the inputs with the label's units."""
        return self._monomial(self.normaliser)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: each group's formula and the label the KAN learns."""
        label = sp.Symbol(self.target) / self.normaliser_expression()
        expressions = self.group_expressions()
        return {
            "groups": {n: str(g) for n, g in zip(self.names, expressions, strict=True)},
            "label": str(label),
            "normaliser": str(self.normaliser_expression()),
        }

    def _powers(self, x: np.ndarray, powers: Sequence[Fraction]) -> np.ndarray:
        out = np.ones(x.shape[0])
        for j, p in enumerate(powers):
            if p:
                out = out * np.power(x[:, j], float(p))
        return out

    def of_inputs(self, x: np.ndarray) -> np.ndarray:
        """The groups ``(m, k)`` of inputs ``x`` ``(m, n)`` (float64; NaN where undefined)."""
        with np.errstate(all="ignore"):
            return np.column_stack([self._powers(x, row) for row in self.exponents])

    def normaliser_of(self, x: np.ndarray) -> np.ndarray:
        """``N(x)`` ``(m,)`` of inputs ``x`` ``(m, n)``: labels are ``N(x) * F(groups)``."""
        with np.errstate(all="ignore"):
            return self._powers(x, self.normaliser)

    def apply(self, dataset: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A pykan dataset in groups: inputs ``(m, k)`` and labels ``(m, 1)``, float64.

        Raises
        ------
        ValueError
            When a group or the label is not finite on some row (a zero under a negative
            power, a negative value under a fractional one), naming the culprits.
        """
        out = {}
        with np.errstate(all="ignore"):
            for part in ("train", "test"):
                x = dataset[f"{part}_input"].double().numpy()
                y = dataset[f"{part}_label"].double().numpy()[:, 0]
                groups = self.of_inputs(x)
                label = y / self.normaliser_of(x)
                bad = ~np.isfinite(groups).all(axis=1) | ~np.isfinite(label)
                if bad.any():
                    raise ValueError(
                        f"the dimensionless groups ({', '.join(self.describe()['groups'].values())}"
                        f") and the label {self.describe()['label']} are not finite on "
                        f"{int(bad.sum())} {part} row(s): a zero under a negative power or a "
                        "negative value under a fractional one; leave out --units for these data"
                    )
                out[f"{part}_input"] = torch.from_numpy(groups)
                out[f"{part}_label"] = torch.from_numpy(label[:, None].copy())
        return out

    def to_data_units(self, expr: Any) -> Any:
        """A formula ``F`` of the groups' symbols as the law ``N(x) * F(groups(x))``."""
        by_name = dict(zip(self.names, self.group_expressions(), strict=True))
        swap = {s: by_name[s.name] for s in expr.free_symbols if s.name in by_name}
        return self.normaliser_expression() * expr.xreplace(swap)


def _exact(dimensions: Sequence[Dimension]) -> sp.Matrix:
    """The ``(7, n)`` dimension matrix of ``dimensions`` in exact rationals."""
    return sp.Matrix([[sp.Rational(e.numerator, e.denominator) for e in d] for d in dimensions]).T


def _solve(matrix: sp.Matrix, column: sp.Matrix) -> list[Fraction] | None:
    """The exact solution of ``matrix @ a = column`` (full column rank), or None if none."""
    try:
        solution, free = matrix.gauss_jordan_solve(column)
    except ValueError:
        return None
    if free.shape[0]:
        return None
    return [Fraction(int(v.p), int(v.q)) for v in solution]


def buckingham(
    dimensions: Sequence[Dimension],
    target: Dimension,
    variables: Sequence[str],
    target_name: str = "y",
) -> Groups | None:
    """The dimensionless groups of inputs with ``dimensions`` (one per variable) and the label
    of dimension ``target``; None when no product of powers of the inputs has the target's
    units (a dimensional constant, such as G in Newton's law, carries the rest)."""
    n = len(variables)
    matrix = _exact(dimensions)
    rank = matrix.rank()
    wanted = _exact([target])
    best: tuple[tuple[Any, ...], Groups] | None = None
    for repeating in itertools.combinations(range(n), rank):
        sub = matrix[:, list(repeating)]
        if sub.rank() < rank:
            continue
        normaliser_r = _solve(sub, wanted) if rank else ([] if not any(target) else None)
        if normaliser_r is None:
            return None  # the column space is the same for every repeating set
        rows: list[tuple[Fraction, ...]] = []
        for j in range(n):
            if j in repeating:
                continue
            a = _solve(sub, matrix[:, j]) if rank else []
            row = [Fraction(0)] * n
            row[j] = Fraction(1)
            for r, value in zip(repeating, a, strict=True):
                row[r] = -value
            rows.append(tuple(row))
        normaliser = [Fraction(0)] * n
        for r, value in zip(repeating, normaliser_r, strict=True):
            normaliser[r] = value
        every = [e for row in rows for e in row] + normaliser
        score = (
            sum(e.denominator != 1 for e in every),
            sum(abs(e) for e in every),
            tuple(-r for r in reversed(repeating)),
        )
        if best is None or score < best[0]:
            groups = Groups(tuple(variables), (), tuple(rows), tuple(normaliser), target_name)
            best = (score, groups)
    if best is None:  # not reached: some ``rank`` columns of a matrix are independent
        raise RuntimeError("no independent set of inputs found")
    groups = best[1]
    return replace(groups, names=tuple(_group_names(groups)))


def _group_names(groups: Groups) -> list[str]:
    """A group that is one input on its own keeps that input's name; the others are
    ``pi_1``, ``pi_2``, ... (a suffix keeps them apart from the inputs' names)."""
    names = []
    taken = set(groups.variables)
    k = 0
    for row in groups.exponents:
        lone = [j for j, e in enumerate(row) if e]
        if len(lone) == 1 and row[lone[0]] == 1:
            names.append(groups.variables[lone[0]])
            continue
        k += 1
        name = f"pi_{k}"
        while name in taken:
            name = f"{name}_"
        taken.add(name)
        names.append(name)
    return names


# The KAN's label y/N(x) carries the label's noise divided by |N|: a row whose |N| is a
# thousandth of the others' carries a thousand times their noise (at 1% label noise, eq. 99's
# dimensionless label held noise 1e8 times its spread). Rows with |N| below the median over
# this are left out of the KAN's rows; formulas are measured on every row after mapping back.
_NORMALISER_SPAN = 10.0


def dimensionless_view(problem: Any) -> tuple[Groups | None, Any, str]:
    """``problem`` (with ``units``) reduced to its dimensionless groups.

    Returns ``(groups, view, note)``: ``groups`` None and ``view`` the problem itself when the
    units give nothing to reduce (no units, a target no product of the inputs reaches, no
    group left, or as many groups as inputs with a unitless label), with ``note`` saying
    which. The view has no truth (exactness is judged on the law mapped back) and its ranges
    are the groups' on the training rows. Training rows whose ``|N(x)|`` is below a tenth of
    its median are left out of the view (their label ``y/N`` magnifies the label's noise);
    the note says how many.

    Raises
    ------
    ValueError
        For units that do not fit the problem's columns, or groups that are not finite.
    """
    if not problem.units:
        return None, problem, "no units given"
    dimensions, target = unit_dimensions(problem.units, problem.variables, problem.target)
    groups = buckingham(dimensions, target, problem.variables, problem.target)
    if groups is None:
        return (
            None,
            problem,
            f"no product of the inputs has {problem.target}'s units ({dimension_text(target)})"
            ": a constant carries the rest; the inputs are used as given",
        )
    if not groups.names:
        return (
            None,
            problem,
            f"no dimensionless group: the law is a constant times "
            f"{groups.normaliser_expression()}; the inputs are used as given",
        )
    if not groups.reduces:
        return None, problem, "every input is a pure number: nothing to reduce"
    dataset = groups.apply(problem.dataset)
    normaliser = np.abs(groups.normaliser_of(problem.dataset["train_input"].double().numpy()))
    small = normaliser < np.median(normaliser) / _NORMALISER_SPAN
    if small.any():
        kept = torch.from_numpy(~small)
        for part in ("train_input", "train_label"):
            dataset[part] = dataset[part][kept]
    x = dataset["train_input"].numpy()
    ranges = [(float(c.min()), float(c.max())) for c in x.T]
    view = replace(
        problem,
        dataset=dataset,
        variables=list(groups.names),
        truth=None,
        ranges=ranges,
        columns={},
        # every group and y / N is a pure number: the units family fits the view's label too
        units={name: "1" for name in (*groups.names, problem.target)},
    )
    note = f"{len(problem.variables)} inputs -> {len(groups.names)} dimensionless group(s)"
    if small.any():
        note += (
            f"; {int(small.sum())} training row(s) whose {groups.normaliser_expression()} is "
            f"below 1/{_NORMALISER_SPAN:g} of its median left out of the KAN's rows"
        )
    return groups, view, note
