"""Saving a fitted estimator to one file and loading it back, without pickle.

The file is written by ``torch.save`` and holds only tensors, numbers, strings, lists and
dicts, so that :func:`load_estimator` reads it with ``torch.load(weights_only=True)``: loading
a file never runs code from it (a pickle would). The formula is stored as text and read back by
:func:`emp_kan.data.formula_parse.parse_formula`, which evaluates nothing either.
"""

from __future__ import annotations

import os
import pickle  # only for its error type: nothing here unpickles
from dataclasses import asdict, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
import torch

from emp_kan._runtime.io import staged_file
from emp_kan.data.formula_parse import parse_formula
from emp_kan.data.groups import Groups
from emp_kan.data.scaling import Scales
from emp_kan.estimators.equations import constants_frame, equations_frame, equations_rows
from emp_kan.kan import adapter
from emp_kan.pruning.records import PruneResult, RoundRecord
from emp_kan.symbolic.edge_fit import EdgeCandidate
from emp_kan.symbolic.formula import EdgeFit, SymbolicFormula
from emp_kan.symbolic.transform import LogTransform

__all__ = ["FORMAT", "load_estimator", "picklable_state", "restored_state", "save_estimator"]

#: Written into every file; :func:`load_estimator` refuses anything else.
FORMAT = "emp-kan-estimator"
_VERSION = 1
_MAX_FORMULA = 1_000_000


def picklable_state(state: dict[str, Any], models: tuple[str, ...]) -> dict[str, Any]:
    """A copy of an estimator's ``__dict__`` that pickle can store: the pykan models named in
    ``models`` as :func:`~emp_kan.kan.adapter.model_state` dicts (pykan's hold lambdas), and
    ``result_`` without its model (it is ``model_``)."""
    import copy

    state = dict(state)
    for name in models:
        if name in state:
            state[name] = adapter.model_state(state[name])
    if state.get("result_") is not None:
        state["result_"] = copy.copy(state["result_"])
        state["result_"].model = None
    return state


def restored_state(state: dict[str, Any], models: tuple[str, ...]) -> dict[str, Any]:
    """The inverse of :func:`picklable_state`."""

    state = dict(state)
    for name in models:
        if isinstance(state.get(name), dict):
            state[name] = adapter.model_from_state(state[name])
    if state.get("result_") is not None:
        state["result_"].model = state["model_"]
    return state


def _plain(value: Any) -> Any:
    """Numbers, strings, lists and dicts only (numpy arrays and tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _formula_state(formula: Any) -> dict[str, Any] | None:
    if formula is None:
        return None
    return {
        "expression": str(formula.expression),
        "variables": [str(v) for v in formula.variables],
        **{
            f.name: _plain(getattr(formula, f.name))
            for f in fields(formula)
            if f.name not in ("expression", "variables", "edges")
        },
        "edges": [_plain(asdict(e)) for e in formula.edges],
    }


def _formula_from_state(state: dict[str, Any] | None) -> Any:
    if state is None:
        return None

    symbols = [sp.Symbol(n, real=True) for n in state["variables"]]
    by_name = {s.name: s for s in symbols}
    expr = parse_formula(state["expression"], max_length=_MAX_FORMULA)
    expr = expr.xreplace({s: by_name[s.name] for s in expr.free_symbols if s.name in by_name})
    edges = [
        EdgeFit(**{**e, "candidates": [EdgeCandidate(**c) for c in e["candidates"]]})
        for e in state["edges"]
    ]
    rest = {k: v for k, v in state.items() if k not in ("expression", "variables", "edges")}
    return SymbolicFormula(expression=expr, variables=symbols, edges=edges, **rest)


def _constants_state(frame: Any) -> list[dict[str, Any]] | None:
    if frame is None:
        return None
    units = frame["units"] if "units" in frame else [None] * len(frame)
    return [
        {
            "value": float(value),
            "std_error": None if not np.isfinite(error) else float(error),
        }
        | ({} if "units" not in frame else {"units": unit})
        for value, error, unit in zip(frame["value"], frame["std_error"], units, strict=True)
    ]


def _groups_state(groups: Groups | None) -> dict[str, Any] | None:
    if groups is None:
        return None
    return {
        "variables": list(groups.variables),
        "names": list(groups.names),
        "exponents": [[str(e) for e in row] for row in groups.exponents],
        "normaliser": [str(e) for e in groups.normaliser],
        "target": groups.target,
    }


def _groups_from_state(state: dict[str, Any] | None) -> Groups | None:
    if state is None:
        return None
    return Groups(
        tuple(state["variables"]),
        tuple(state["names"]),
        tuple(tuple(Fraction(e) for e in row) for row in state["exponents"]),
        tuple(Fraction(e) for e in state["normaliser"]),
        state["target"],
    )


def _equations_state(frame: Any) -> list[dict[str, Any]] | None:
    return None if frame is None else equations_rows(frame)


def _equations_from_state(rows: list[dict[str, Any]] | None, names: list[str]) -> Any:
    if rows is None:
        return None

    by_name = {n: sp.Symbol(n, real=True) for n in names}
    expressions = []
    for row in rows:
        expr = parse_formula(row["formula"], max_length=_MAX_FORMULA)
        expressions.append(
            expr.xreplace({s: by_name[s.name] for s in expr.free_symbols if s.name in by_name})
        )
    return equations_frame(rows, expressions)


def _result_state(result: Any) -> dict[str, Any]:
    state = {
        f.name: _plain(getattr(result, f.name))
        for f in fields(result)
        if f.name not in ("model", "history")
    }
    state["history"] = [_plain(asdict(r)) for r in result.history]
    return state


def _result_from_state(state: dict[str, Any], model: Any) -> Any:
    state = dict(state)
    state["history"] = [RoundRecord(**r) for r in state["history"]]
    state["edge_pruned_round"] = [np.asarray(m) for m in state["edge_pruned_round"]]
    return PruneResult(model=model, **state)


def _read_payload(path: str | os.PathLike) -> tuple[dict[str, Any] | None, str]:
    """The dict :func:`save_estimator` wrote to ``path``, or None and why it is not one."""
    try:
        payload = torch.load(path, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        return None, f"cannot read {path} as a saved emp-kan estimator: {exc}"
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return None, f"{path} is not a saved emp-kan estimator"
    return payload, ""


def _check_save_path(path: Path) -> None:
    """Raise ValueError unless ``path`` is new or an earlier saved estimator (never a user's
    other file, a folder or a link), in an existing folder."""
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; give a new file name")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as model.empkan")
    if path.exists() and _read_payload(path)[0] is None:
        raise ValueError(
            f"{path} exists and is not a saved emp-kan estimator; emp-kan never "
            "replaces it: give a new file name"
        )
    if not path.parent.is_dir():
        raise ValueError(f"the folder {path.parent} does not exist; create it first")


def save_estimator(estimator: Any, path: str | os.PathLike) -> Path:
    """Write a fitted estimator to ``path`` and return it.

    ``path`` must be new or an earlier file of this function (which is replaced); any other
    file is refused with ValueError. Written to a temporary file beside ``path`` and renamed
    into place, so that a failure leaves no half-written file.
    """

    estimator._check_fitted()
    path = Path(path)
    _check_save_path(path)
    transform = getattr(estimator, "transform_", None)
    payload = {
        "format": FORMAT,
        "version": _VERSION,
        "class": type(estimator).__name__,
        "params": _plain(estimator.get_params()),
        "model": adapter.model_state(estimator.model_),
        "result": _result_state(estimator.result_),
        "feature_names": list(estimator.variable_names_),
        "dataframe_columns": (
            None
            if getattr(estimator, "feature_names_in_", None) is None
            else [str(n) for n in estimator.feature_names_in_]
        ),
        "formula": _formula_state(estimator.formula_),
        "equations": _equations_state(getattr(estimator, "equations_", None)),
        "transform": None if transform is None else _plain(asdict(transform)),
        "scales": _plain(asdict(estimator.scales_)) if hasattr(estimator, "scales_") else None,
        "groups": _groups_state(getattr(estimator, "groups_", None)),
        "constants": _constants_state(getattr(estimator, "constants_", None)),
        "noise_estimate": _plain(getattr(estimator, "noise_estimate_", None)),
    }
    with staged_file(path) as staging:
        torch.save(payload, staging)
    return path


def load_estimator(path: str | os.PathLike, cls: type) -> Any:
    """The estimator of class ``cls`` that :func:`save_estimator` wrote to ``path``.

    Raises
    ------
    ValueError
        The file is not an emp-kan estimator file (or of another estimator class).
    """

    payload, why = _read_payload(path)
    if payload is None:
        raise ValueError(why)
    if payload.get("class") != cls.__name__:
        raise ValueError(f"{path} holds a {payload.get('class')}, not a {cls.__name__}")
    params = dict(payload["params"])
    for name in ("hidden", "library"):
        if isinstance(params.get(name), list):
            params[name] = tuple(params[name])
    estimator = cls(**params)
    model = adapter.model_from_state(payload["model"])
    estimator.model_ = model
    estimator.result_ = _result_from_state(payload["result"], model)
    estimator.history_ = estimator.result_.history
    estimator.variable_names_ = list(payload["feature_names"])
    estimator.n_features_in_ = len(payload["feature_names"])
    # Files written before "dataframe_columns" named every estimator's features.
    columns = payload.get("dataframe_columns", payload["feature_names"])
    if columns is not None:
        estimator.feature_names_in_ = np.array(columns, dtype=object)
    estimator.formula_ = _formula_from_state(payload["formula"])
    if "equations" in payload:  # files of classifiers and older files have none
        estimator.equations_ = _equations_from_state(
            payload["equations"], estimator.variable_names_
        )
    if payload.get("constants") is not None:  # classifiers' files have none
        estimator.constants_ = constants_frame(payload["constants"])
        estimator.noise_estimate_ = payload.get("noise_estimate")
    scales = payload.get("scales")  # files written before scaling have none: as given
    estimator.scales_ = (
        Scales((1.0,) * estimator.n_features_in_, 1.0)
        if scales is None
        else Scales(tuple(scales["inputs"]), float(scales["label"]))
    )
    estimator.groups_ = _groups_from_state(payload.get("groups"))  # older files: none
    transform = payload["transform"]
    estimator.transform_ = (
        None
        if transform is None
        else LogTransform(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in transform.items()}
        )
    )
    return estimator
