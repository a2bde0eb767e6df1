"""What the round loop records: one :class:`RoundRecord` per attempt, and the run's
:class:`PruneResult` (JSON-ready through ``to_dict``)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from emp_kan._runtime.numbers import finite_or_none
from emp_kan.kan import adapter

__all__ = ["PruneResult", "RoundRecord", "in_label_units"]


@dataclass
class RoundRecord:
    """One attempt of the loop: prune with one rung's pruner, retrain, accept or back off.

    Losses are RMSE. ``val_*`` are on the validation rows (carved from the training rows) and
    decide; ``test_*`` only report. ``*_after_retrain`` is NaN when the attempt was not
    retrained (it removed nothing).
    """

    round: int  # the round this attempt belongs to (1-based)
    accepted: bool
    status: str  # "accepted", "rejected: ...", "fixed point: ..."
    layers: list[dict]
    train_rmse_before: float
    test_rmse_before: float
    train_rmse_after_prune: float
    test_rmse_after_prune: float
    train_rmse_after_retrain: float
    test_rmse_after_retrain: float
    edges_alive: int
    nodes_alive: int
    widths: list[int]
    removed_edges: list[list[int]]  # [layer, out_id, in_id], original ids
    removed_nodes: list[list[int]]  # [layer, node_id], original ids
    seconds_train: float
    seconds_score: float
    seconds_prune: float
    warnings: list[str] = field(default_factory=list)
    attempt: int = 0  # 1-based over the whole run
    rung: int = 0  # 0: the pruner as given; k: backed off by backoff**k
    pruner: str = ""
    val_rmse_before: float = math.nan
    val_rmse_after_prune: float = math.nan
    val_rmse_after_retrain: float = math.nan
    accept_below: float = math.nan


@dataclass
class PruneResult:
    """What :func:`prune_rounds` returns.

    Attributes
    ----------
    model : kan.MultKAN
        The last accepted model (a new object; the model passed in is left untouched).
    history : list of RoundRecord
        Every attempt, accepted or not, in order.
    node_ids : list of list of int
        For each layer, the original id of each node of ``model``.
    edge_pruned_round : list of ndarray
        Per layer, ``(out, in)`` in original ids: the round in which the edge was removed, or -1.
    initial_widths : list of int
    initial_train_rmse, initial_test_rmse : float
        After the initial training, before any pruning.
    seconds_initial_train : float
    pruner : str
    final_train_rmse, final_test_rmse : float
        Of ``model``: after the final retraining without regularisation (``final_steps``).
    seconds_final_train : float
    stop_reason : str
        Why the loop ended: a fixed point, the round cap or the attempt budget.
    initial_val_rmse, final_val_rmse : float
        On the validation rows: the reference of the accept rule, and the returned model's.
    accept_below : float
        The accept rule's limit on an attempt's validation RMSE.
    schedule : dict
        The :class:`~emp_kan.pruning.schedule.Schedule` that ran.
    """

    model: Any
    history: list[RoundRecord]
    node_ids: list[list[int]]
    edge_pruned_round: list[np.ndarray]
    initial_widths: list[int]
    initial_train_rmse: float
    initial_test_rmse: float
    seconds_initial_train: float
    pruner: str
    final_train_rmse: float
    final_test_rmse: float
    seconds_final_train: float
    stop_reason: str = ""
    initial_val_rmse: float = math.nan
    final_val_rmse: float = math.nan
    accept_below: float = math.nan
    schedule: dict = field(default_factory=dict)

    @property
    def edges_alive(self) -> int:
        return int(sum(int(m.sum()) for m in adapter.get_edge_masks(self.model)))

    @property
    def rejected_attempts(self) -> int:
        """Attempts that were retrained and rolled back."""
        return sum(1 for r in self.history if r.status.startswith("rejected"))

    def to_dict(self) -> dict:
        """A JSON-ready dict: everything but the model."""
        return {
            "pruner": self.pruner,
            "initial_widths": self.initial_widths,
            "final_widths": adapter.widths(self.model),
            "initial_train_rmse": finite_or_none(self.initial_train_rmse),
            "initial_val_rmse": finite_or_none(self.initial_val_rmse),
            "initial_test_rmse": finite_or_none(self.initial_test_rmse),
            "seconds_initial_train": self.seconds_initial_train,
            "final_train_rmse": finite_or_none(self.final_train_rmse),
            "final_val_rmse": finite_or_none(self.final_val_rmse),
            "final_test_rmse": finite_or_none(self.final_test_rmse),
            "seconds_final_train": self.seconds_final_train,
            "stop_reason": self.stop_reason,
            "accept_below": finite_or_none(self.accept_below),
            "schedule": self.schedule,
            "rejected_attempts": self.rejected_attempts,
            "node_ids": self.node_ids,
            "edge_pruned_round": [m.tolist() for m in self.edge_pruned_round],
            "history": [_jsonable(asdict(r)) for r in self.history],
        }

    def to_json(self, **kwargs: Any) -> str:
        """JSON text; NaN losses are written as null."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return finite_or_none(obj)
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj


def _scaled_losses(record: Any, factor: float) -> Any:
    """A dataclass with every ``*_rmse*`` field and ``accept_below`` times ``factor``."""
    changes = {
        f.name: getattr(record, f.name) * factor
        for f in fields(record)
        if ("rmse" in f.name or f.name == "accept_below")
        and isinstance(getattr(record, f.name), float)
    }
    return replace(record, **changes)


def in_label_units(result: PruneResult, factor: float) -> PruneResult:
    """``result`` with every loss (its own and each attempt's) times ``factor``: the losses of
    a loop run on labels divided by ``factor``, in the labels' own units."""
    if factor == 1.0:
        return result
    scaled = _scaled_losses(result, factor)
    return replace(scaled, history=[_scaled_losses(r, factor) for r in result.history])
