"""Where a problem's data comes from: pykan's Feynman set, a formula, or a CSV file.

Each source returns a :class:`Problem`: a pykan dataset dict, the input names, the true formula
when it is known, and the input ranges. Sampling is seeded and leaves the global generators
alone.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
import torch

from emp_kan._runtime.checks import check_finite_nonneg
from emp_kan.data import feynman
from emp_kan.data.formula_parse import parse_formula
from emp_kan.data.tables import read_table
from emp_kan.data.units import dimension_of, unit_dimensions

log = logging.getLogger("emp_kan")

__all__ = [
    "Problem",
    "csv_problem",
    "feynman_problem",
    "formula_problem",
    "parse_ranges",
    "with_label_noise",
    "with_units",
]


@dataclass
class Problem:
    """A regression problem: ``dataset`` (pykan dict), ``variables``, ``truth`` (or None)."""

    name: str
    dataset: dict[str, torch.Tensor]
    variables: list[str]
    truth: Any
    ranges: list[tuple[float, float]] | None
    target: str = "y"
    columns: dict[str, str] = field(default_factory=dict)  # variable -> a CSV column's own name
    units: dict[str, str] = field(default_factory=dict)  # variable or target -> its unit


def _sample(fn, bounds, n_train, n_test, seed) -> dict[str, torch.Tensor]:
    gen = np.random.default_rng(seed)

    def draw(n):
        cols = [gen.uniform(lo, hi, n) for lo, hi in bounds]
        x = torch.tensor(np.column_stack(cols), dtype=torch.float32)
        return x, fn(x)

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return {"train_input": x_tr, "train_label": y_tr, "test_input": x_te, "test_label": y_te}


def _check_samples(samples: int) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 10:
        raise ValueError(f"samples must be a whole number >= 10, got {samples!r}")


def feynman_problem(number: int, samples: int = 1000, seed: int = 0) -> Problem:
    """Equation ``number`` of pykan's Feynman set, ``samples`` train and test rows each."""
    _check_samples(samples)
    names, truth, fn, bounds = feynman.feynman_entry(number)
    data = _sample(lambda x: fn(x).reshape(-1, 1).float(), bounds, samples, samples, seed)
    target = "y" if "y" not in names else "f"  # equation 56 has an input y
    return Problem(f"feynman-{number}", data, names, truth, bounds, target)


def with_label_noise(problem: Problem, sigma: float, seed: int = 0) -> Problem:
    """``problem`` with Gaussian noise of ``sigma`` times the training labels' standard
    deviation added to the training labels (so to the validation rows carved from them too);
    the test labels stay clean, as in SRBench. Seeded by ``seed`` on its own stream (the
    caller's random state is untouched); ``sigma = 0`` returns ``problem`` itself.

    Raises
    ------
    ValueError
        If ``sigma`` is not a finite number >= 0.
    """
    check_finite_nonneg("noise", sigma)  # a share of the label std, e.g. 0.01
    if sigma == 0:
        return problem
    labels = problem.dataset["train_label"]
    rng = np.random.default_rng([seed, 0x6E6F6973])  # a stream apart from the data's
    noise = rng.standard_normal(tuple(labels.shape)) * sigma * float(labels.std())
    dataset = dict(problem.dataset)
    dataset["train_label"] = labels + torch.as_tensor(noise, dtype=labels.dtype)
    return replace(problem, name=f"{problem.name}-noise{sigma:g}", dataset=dataset)


_RANGE = re.compile(
    r"^\s*([A-Za-z_]\w*)\s*=\s*([-+0-9.eE]+|[-+]?pi)\s*:\s*([-+0-9.eE]+|[-+]?pi)\s*$"
)


def _number(text: str) -> float:
    text = text.strip()
    return float(parse_formula(text)) if "pi" in text else float(text)


def parse_ranges(spec: str) -> dict[str, tuple[float, float]]:
    """``"x=0:1,y=-pi:pi"`` -> ``{"x": (0.0, 1.0), "y": (-3.14..., 3.14...)}``."""
    out: dict[str, tuple[float, float]] = {}
    for part in spec.split(","):
        match = _RANGE.match(part)
        if not match:
            raise ValueError(f"cannot read range {part.strip()!r}; write NAME=LOW:HIGH, e.g. x=0:1")
        name, lo, hi = match.group(1), _number(match.group(2)), _number(match.group(3))
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"range of {name} must have LOW < HIGH, got {lo}:{hi}")
        if name in out:
            raise ValueError(f"{name} has two ranges")
        out[name] = (lo, hi)
    return out


def formula_problem(expr: str, ranges: str, samples: int = 1000, seed: int = 0) -> Problem:
    """Data from a sympy expression, e.g. ``"x*exp(-y)"`` with ``"x=0:1,y=0:2"``."""
    _check_samples(samples)
    truth = parse_formula(expr)
    bounds_by_name = parse_ranges(ranges)
    names = sorted(str(s) for s in truth.free_symbols)
    if not names:
        raise ValueError(f"the formula {expr!r} has no variable")
    missing = [n for n in names if n not in bounds_by_name]
    extra = [n for n in bounds_by_name if n not in names]
    if missing:
        raise ValueError(f"no range given for {', '.join(missing)}; add e.g. {missing[0]}=0:1")
    if extra:
        raise ValueError(f"ranges name {', '.join(extra)}, which the formula does not use")
    symbols = [sp.Symbol(n) for n in names]
    truth = truth.xreplace({s: sp.Symbol(s.name) for s in truth.free_symbols})
    numeric = sp.lambdify(symbols, truth, "numpy")
    bounds = [bounds_by_name[n] for n in names]

    def fn(x: torch.Tensor) -> torch.Tensor:
        with np.errstate(all="ignore"):
            y = np.broadcast_to(
                np.asarray(numeric(*x.double().numpy().T), dtype=float), (x.shape[0],)
            )
        return torch.tensor(y, dtype=torch.float32).reshape(-1, 1)

    data = _sample(fn, bounds, samples, samples, seed)
    bad = int(
        (~torch.isfinite(data["train_label"])).sum() + (~torch.isfinite(data["test_label"])).sum()
    )
    if bad:
        raise ValueError(f"the formula is undefined at {bad} sampled points; narrow the ranges")
    return Problem(f"formula-{readable_name(expr)}", data, names, truth, bounds)


def readable_name(expr: str, limit: int = 40) -> str:
    """``expr`` as a folder name that still reads as the formula: ``m*v**2/2`` -> ``m·v^2÷2``.

    Powers become ``^``, products ``·``, quotients ``÷``; spaces go, and any other character a
    file name cannot hold (or a shell would trip on) becomes ``_``.
    """
    text = expr.replace(" ", "").replace("**", "^").replace("*", "·").replace("/", "÷")
    text = re.sub(r"[^A-Za-z0-9_.^·÷+=-]+", "_", text)[:limit].strip("_.")
    return text or "formula"


def csv_problem(
    path: str | Path,
    target: str,
    seed: int = 0,
    test_share: float = 0.2,
    inputs: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    dropna: bool = False,
    units: Mapping[str, str] | None = None,
) -> Problem:
    """Real data: a CSV with a header row; ``target`` is the label, the other columns (or
    ``inputs``, minus ``exclude``) the inputs. See :func:`emp_kan.data.tables.read_table` for
    what is read and what is refused.

    Units (see :func:`with_units`) come from the header (``F [N]``) and ``units`` (by
    variable or column name); without ``units``, the header's are used when every column
    has one.

    Rows are shuffled with ``seed`` and split ``1 - test_share`` / ``test_share``. The values
    stay float64 (measured values may lie beyond float32's range; discover rescales them).
    Column names that are not formula variables become ones (``P (bar)`` -> ``P_bar``); the
    problem's ``columns`` maps them back.
    """
    table = read_table(path, target, inputs, exclude, dropna)
    order = np.random.default_rng(seed).permutation(len(table.target))
    n_test = max(1, int(round(test_share * len(order))))
    test, train = order[:n_test], order[n_test:]
    x = torch.tensor(table.inputs, dtype=torch.float64)
    y = torch.tensor(table.target[:, None], dtype=torch.float64)
    data = {
        "train_input": x[train],
        "train_label": y[train],
        "test_input": x[test],
        "test_label": y[test],
    }
    bounds = [(float(c.min()), float(c.max())) for c in x.T]
    name = f"csv-{Path(path).stem}"
    problem = Problem(name, data, table.variables, None, bounds, table.target_name, table.columns)
    if units is None:
        unitless = [column for name, column in problem.columns.items() if name not in table.units]
        if not table.units:
            return problem
        if unitless:
            log.info(
                "the units in the header are not used: %s has none (add them with units)",
                ", ".join(map(repr, unitless)),
            )
            return problem
    return with_units(replace(problem, units=table.units), units or {})


def with_units(problem: Problem, units: Mapping[str, str]) -> Problem:
    """``problem`` with ``units`` (name -> unit, as pint reads it) added to the ones it has
    (a CSV header's ``F [N]``); a name is a variable, the target, or a CSV column's own name.

    Raises
    ------
    ValueError
        Before any work: a unit pint cannot read, a name that is not a column, a column left
        without a unit, or dimensionless groups the data cannot take (a zero under a negative
        power).
    """
    from emp_kan.data.groups import dimensionless_view

    by_column = {column: name for name, column in problem.columns.items()}
    merged = dict(problem.units)
    for name, unit in units.items():
        dimension_of(unit)
        merged[by_column.get(name, name)] = unit
    problem = replace(problem, units=merged)
    unit_dimensions(merged, problem.variables, problem.target)
    dimensionless_view(problem)
    return problem
