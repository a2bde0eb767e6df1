"""The round loop: train -> score -> prune -> compact -> retrain, with rollback.

Node and edge ids in the history are the ids of the model given to :func:`prune_rounds`
("original ids"), whatever structural removals happened since.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from emp_kan._runtime import threads
from emp_kan.data.problems import split_validation
from emp_kan.kan import adapter
from emp_kan.kan.fast.train import data_loss
from emp_kan.kan.scores import compute_scores
from emp_kan.kan.topology import live_nodes, restore_cut_outputs
from emp_kan.pruning.pruners import EMPPruner, LayerDecision, ThresholdPruner
from emp_kan.pruning.schedule import (
    DEFAULT_ROUND_STEPS,
    DEFAULT_ROUNDS,
    DEFAULT_SCHEDULE,
    Schedule,
)

LabelMap = Callable[[torch.Tensor], torch.Tensor]
log = logging.getLogger("emp_kan")

__all__ = [
    "PruneResult",
    "RoundRecord",
    "StepOutcome",
    "check_dataset",
    "prune_once",
    "prune_rounds",
    "prune_step",
    "train",
]


# --- input checks -------------------------------------------------------------------------


def check_dataset(dataset: Any, n_inputs: int | None = None, n_outputs: int | None = None) -> None:
    """Raise ValueError unless ``dataset`` is a pykan dataset dict that fits the model.

    A pykan dataset maps ``train_input`` / ``test_input`` (``(n, w_0)`` float tensors) and
    ``train_label`` / ``test_label`` (``(n, w_L)``) to torch tensors.
    """
    if not isinstance(dataset, Mapping):
        raise ValueError(
            f"dataset must be a dict with keys {', '.join(adapter.DATASET_KEYS)}, "
            f"got {type(dataset).__name__}"
        )
    missing = [k for k in adapter.DATASET_KEYS if k not in dataset]
    if missing:
        raise ValueError(
            f"dataset is missing {', '.join(missing)}; kan.utils.create_dataset builds all four"
        )
    for key in adapter.DATASET_KEYS:
        value = dataset[key]
        if not isinstance(value, torch.Tensor) or value.ndim != 2:
            shape = getattr(value, "shape", None)
            raise ValueError(f"dataset[{key!r}] must be a 2-D torch tensor, got shape {shape}")
        if value.shape[0] == 0:
            raise ValueError(f"dataset[{key!r}] has no rows")
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise ValueError(f"dataset[{key!r}] has {bad} NaN or infinite entries; drop them")
    for split in ("train", "test"):
        x, y = dataset[f"{split}_input"], dataset[f"{split}_label"]
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{split}_input has {x.shape[0]} rows but {split}_label has {y.shape[0]}"
            )
    if dataset["train_input"].shape[1] != dataset["test_input"].shape[1]:
        raise ValueError("train_input and test_input have different numbers of columns")
    if n_inputs is not None and dataset["train_input"].shape[1] != n_inputs:
        raise ValueError(
            f"the model takes {n_inputs} inputs but the dataset has "
            f"{dataset['train_input'].shape[1]} input columns"
        )
    if n_outputs is not None and dataset["train_label"].shape[1] != n_outputs:
        raise ValueError(
            f"the model has {n_outputs} outputs but the dataset has "
            f"{dataset['train_label'].shape[1]} label columns"
        )


def _check_nonneg(name: str, value: Any) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


# --- records ------------------------------------------------------------------------------


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
            "initial_train_rmse": _json_float(self.initial_train_rmse),
            "initial_val_rmse": _json_float(self.initial_val_rmse),
            "initial_test_rmse": _json_float(self.initial_test_rmse),
            "seconds_initial_train": self.seconds_initial_train,
            "final_train_rmse": _json_float(self.final_train_rmse),
            "final_val_rmse": _json_float(self.final_val_rmse),
            "final_test_rmse": _json_float(self.final_test_rmse),
            "seconds_final_train": self.seconds_final_train,
            "stop_reason": self.stop_reason,
            "accept_below": _json_float(self.accept_below),
            "schedule": self.schedule,
            "rejected_attempts": self.rejected_attempts,
            "node_ids": self.node_ids,
            "edge_pruned_round": [m.tolist() for m in self.edge_pruned_round],
            "history": [_jsonable(asdict(r)) for r in self.history],
        }

    def to_json(self, **kwargs: Any) -> str:
        """JSON text; NaN losses are written as null."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)


def _json_float(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj


# --- one pruning step ---------------------------------------------------------------------


@dataclass
class StepOutcome:
    """The result of :func:`prune_step` (or :func:`prune_once`) on one model state:
    ``model`` (the pruned copy), its ``node_ids``, the per-layer EMP ``decisions`` and what
    was removed."""

    model: Any
    node_ids: list[list[int]]
    decisions: list[LayerDecision]
    removed_edges: list[list[int]]
    removed_nodes: list[list[int]]
    warnings: list[str]
    masks_before_compaction: list[np.ndarray]
    node_ids_before_compaction: list[list[int]]
    seconds_score: float

    @property
    def hidden(self) -> list[int]:
        """Hidden nodes per hidden layer of the pruned model."""
        return adapter.widths(self.model)[1:-1]


@threads.single_threaded
def prune_once(model: Any, x: torch.Tensor, pruner: EMPPruner | ThresholdPruner) -> StepOutcome:
    """Prune ``model`` once, with no retraining: the EMP paper's one-shot recipe.

    Parameters
    ----------
    model : kan.MultKAN
        A trained model; not changed.
    x : torch.Tensor, ``(batch, w_0)``
        The inputs the scores are computed on (the training inputs).
    pruner : EMPPruner or ThresholdPruner
        E.g. ``EMPPruner(target="nodes", beta=1.0)`` for one-shot node EMP per hidden layer.

    Returns
    -------
    StepOutcome
        ``.model`` is the pruned copy, ``.hidden`` its hidden widths, ``.decisions`` the EMP
        arithmetic per layer (N_eff, kept, preserved mass, bound).
    """
    adapter.check_model(model)
    return prune_step(model, x, pruner)


def _drop_hidden_nodes(model, node_ids, keep_hidden, removed_nodes, removed_edges):
    """Remove hidden nodes structurally; record them and their live edges in original ids.

    ``keep_hidden[h]`` is the bool keep mask of hidden layer ``h + 1``. Returns the new model
    and its node ids.
    """
    if all(k.all() for k in keep_hidden):
        return model, node_ids
    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    for h, keep in enumerate(keep_hidden):
        for i in np.flatnonzero(~keep):
            removed_nodes.append([h + 1, node_ids[h + 1][i]])
            for o in np.flatnonzero(masks[h + 1][:, i]):
                removed_edges.append([h + 1, node_ids[h + 2][o], node_ids[h + 1][i]])
            for j in np.flatnonzero(masks[h][i, :]):
                removed_edges.append([h, node_ids[h + 1][i], node_ids[h][j]])
    model = adapter.remove_nodes(model, [np.flatnonzero(k) for k in keep_hidden])
    kept_ids = [
        [ids[i] for i in np.flatnonzero(k)]
        for ids, k in zip(node_ids[1:-1], keep_hidden, strict=True)
    ]
    return model, [node_ids[0], *kept_ids, node_ids[-1]]


def _strongest_nodes(keep: list[np.ndarray], scores: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for k, s in zip(keep, scores, strict=True):
        k = k.copy()
        if not k.any():
            k[int(np.argmax(np.abs(s)))] = True
        out.append(k)
    return out


def prune_step(
    model: Any,
    x: torch.Tensor,
    pruner: EMPPruner | ThresholdPruner,
    node_ids: list[list[int]] | None = None,
) -> StepOutcome:
    """Score, prune and compact once. ``model`` itself is not changed.

    Nodes are pruned first (when the pruner targets them), then the smaller model is re-scored
    and its edges pruned (when targeted). Finally every hidden node that lost all its live
    inputs or outputs is removed, and no output is ever left without a path from an input.

    Parameters
    ----------
    model : kan.MultKAN
    x : torch.Tensor, ``(batch, w_0)``
        The inputs scores are computed on (the training inputs).
    pruner : EMPPruner or ThresholdPruner
    node_ids : list of list of int, optional
        Original ids of the model's nodes, per layer; defaults to ``0..w_l-1``.
    """
    model = adapter.clone_model(model)
    if node_ids is None:
        node_ids = [list(range(w)) for w in adapter.widths(model)]
    decisions: list[LayerDecision] = []
    removed_edges: list[list[int]] = []
    removed_nodes: list[list[int]] = []
    warnings: list[str] = []
    seconds_score = 0.0

    def timed_scores():
        nonlocal seconds_score
        t = time.perf_counter()
        out = compute_scores(model, x, pruner.edge_score, pruner.node_score)
        seconds_score += time.perf_counter() - t
        return out

    if pruner.prunes_nodes and len(adapter.widths(model)) > 2:
        scores = timed_scores()
        keep, dec = pruner.keep_nodes(scores.nodes)
        decisions += dec
        if any(not k.any() for k in keep):
            warnings.append("a node rule would empty a hidden layer; kept its strongest node")
            keep = _strongest_nodes(keep, scores.nodes)
        model, node_ids = _drop_hidden_nodes(model, node_ids, keep, removed_nodes, removed_edges)

    masks = [m.numpy() for m in adapter.get_edge_masks(model)]
    if pruner.prunes_edges:
        scores = timed_scores()
        new_masks, dec = pruner.keep_edges(scores.edges, masks)
        decisions += dec
        new_masks, warn = restore_cut_outputs(new_masks, masks, scores.edges)
        warnings += warn
        for layer, (old, new) in enumerate(zip(masks, new_masks, strict=True)):
            for o, i in zip(*np.nonzero(old & ~new), strict=True):
                removed_edges.append([layer, node_ids[layer + 1][o], node_ids[layer][i]])
        adapter.set_edge_masks(model, new_masks)
        masks = new_masks
    masks_before = [m.copy() for m in masks]
    ids_before = [list(ids) for ids in node_ids]

    live = live_nodes(masks)
    model, node_ids = _drop_hidden_nodes(model, node_ids, live[1:-1], removed_nodes, removed_edges)
    for w in warnings:
        log.warning(w)
    return StepOutcome(
        model=model,
        node_ids=node_ids,
        decisions=decisions,
        removed_edges=removed_edges,
        removed_nodes=removed_nodes,
        warnings=warnings,
        masks_before_compaction=masks_before,
        node_ids_before_compaction=ids_before,
        seconds_score=seconds_score,
    )


# --- training and the loop ----------------------------------------------------------------


@threads.single_threaded
def train(
    model: Any,
    dataset: Mapping[str, torch.Tensor],
    steps: int = 50,
    lamb: float = 1e-3,
    seed: int = 0,
    opt: str = "LBFGS",
    update_grid: bool = True,
    loss: str = "mse",
    lr: float = 1.0,
) -> Any:
    """Train a copy of ``model`` as pykan's ``fit`` would (through the fast path of
    :mod:`emp_kan.kan.fast.train` where it applies); silent, file-free, reproducible.

    Returns the trained copy; ``model`` and the global generators are left as they were.
    """
    adapter.check_model(model)
    w = adapter.widths(model)
    check_dataset(dataset, w[0], w[-1])
    steps = _check_count("steps", steps)
    lamb = _check_nonneg("lamb", lamb)
    trained = adapter.clone_model(model)
    adapter.fit(trained, dataset, steps, lamb, seed, opt=opt, update_grid=update_grid, loss=loss,
                lr=lr)  # fmt: skip
    return trained


def _rmse(model, x: torch.Tensor, y: torch.Tensor, label_map: LabelMap | None,
          loss: str = "mse") -> float:  # fmt: skip
    """RMSE (after ``label_map``), or the mean cross-entropy for ``loss="cross_entropy"``."""
    if label_map is None and loss == "mse":
        return adapter.rmse(model, x, y)
    with torch.no_grad():
        prediction = adapter.forward_pass(model, x)
        if loss == "cross_entropy":
            return float(data_loss(prediction, y, loss))
        return float(torch.sqrt(torch.mean((label_map(prediction) - label_map(y)) ** 2)))


def _rmse3(model, fit: Mapping[str, torch.Tensor], val: Mapping[str, torch.Tensor],
           dataset: Mapping[str, torch.Tensor], label_map: LabelMap | None = None,
           loss: str = "mse") -> tuple[float, float, float]:  # fmt: skip
    """(train, validation, test) losses; only the validation one may decide anything."""
    return (
        _rmse(model, fit["train_input"], fit["train_label"], label_map, loss),
        _rmse(model, val["x"], val["y"], label_map, loss),
        _rmse(model, dataset["test_input"], dataset["test_label"], label_map, loss),
    )


def _count_alive(model) -> tuple[int, int]:
    edges = sum(int(m.sum()) for m in adapter.get_edge_masks(model))
    nodes = sum(adapter.widths(model)[1:-1])
    return edges, nodes


def _retrain_and_judge(model, splits, steps, lamb, seed, schedule, opt, update_grid,
                       label_map=None, loss="mse") -> tuple[tuple[float, float, float], str]:
    """Retrain a pruned ``model`` in place on ``splits = (fit, val, dataset)``; return the
    losses it is judged on and, when training failed, a "rejected: ..." status."""
    fit = splits[0]
    nan3 = (math.nan, math.nan, math.nan)
    try:
        adapter.fit(model, fit, steps, lamb, seed, opt=opt, update_grid=update_grid, loss=loss)
        losses = _rmse3(model, *splits, label_map, loss)
        if not math.isfinite(losses[1]):
            return losses, "rejected: retraining diverged (non-finite validation loss)"
        if lamb > 0 and schedule.judge_steps > 0:
            # The sparsity penalty costs accuracy that a short plain fit gives back; judge the
            # pruned structure on what it can fit, not on the penalised fit.
            judged = adapter.clone_model(model)
            adapter.fit(judged, fit, schedule.judge_steps, 0.0, seed, opt=opt,
                        update_grid=update_grid, loss=loss)  # fmt: skip
            losses = _rmse3(judged, *splits, label_map, loss)
    except (RuntimeError, ValueError, torch.linalg.LinAlgError) as exc:  # pykan's solvers
        log.info("retraining failed: %s", exc)
        return nan3, f"rejected: retraining failed ({type(exc).__name__})"
    return losses, ""


@threads.single_threaded
def prune_rounds(
    model: Any,
    dataset: Mapping[str, torch.Tensor],
    pruner: EMPPruner | ThresholdPruner | None = None,
    rounds: int = DEFAULT_ROUNDS,
    steps: int = DEFAULT_ROUND_STEPS,
    lamb: float = 1e-3,
    tol: float | None = None,
    initial_steps: int | None = None,
    final_steps: int | None = None,
    seed: int = 0,
    opt: str = "LBFGS",
    update_grid: bool = True,
    progress: bool = False,
    schedule: Schedule | None = None,
    label_map: LabelMap | None = None,
    loss: str = "mse",
    progress_label: str | None = None,
) -> PruneResult:
    """Alternate pruning and retraining until nothing more can go (a fixed point).

    Each round tries the pruner; a pruned model that retrains to a validation RMSE above the
    schedule's limit is rolled back and the round retried with a gentler rung (EMP: a larger
    beta; thresholds: smaller ones). The loop ends when no rung removes anything that is
    accepted, or at the ``rounds`` cap, or when the attempt budget is spent. Decisions use only
    validation rows carved from the training rows
    (:func:`emp_kan.data.problems.split_validation`); the test rows are reported, never used.

    Parameters
    ----------
    model : kan.MultKAN
        Not modified; the loop works on a copy.
    dataset : dict of torch.Tensor
        ``train_input (n, w_0)``, ``train_label (n, w_L)``, ``test_input``, ``test_label``.
    pruner : EMPPruner or ThresholdPruner
        Default: ``EMPPruner(target="both")``.
    rounds : int
        At most this many accepted rounds (a cap; the loop usually stops at a fixed point).
    steps : int
        Training steps after each pruning attempt.
    lamb : float
        pykan's sparsity regularisation during training.
    tol : float, optional
        Shorthand for ``schedule.tol``.
    initial_steps : int, optional
        Training steps before the first round; default ``steps``. Pass 0 for a model trained
        on the same fit rows (see :func:`emp_kan.data.problems.split_validation`).
    final_steps : int, optional
        Training steps without regularisation (``lamb = 0``) on the last accepted model, as
        pykan's tutorial does after pruning; default ``steps``, 0 to skip.
    seed : int
        Seeds every training call (attempt ``a`` uses ``seed + a``).
    progress : bool
        Show a tqdm bar over attempts.
    schedule : Schedule, optional
        Accept rule and back-off ladder; default :data:`DEFAULT_SCHEDULE`.
    label_map : callable, optional
        Maps predictions and labels ``(n, 1)`` elementwise to the space the losses are measured
        (and decided) in, e.g. ``torch.exp`` for a KAN of ``log|y|``, so that a few rows far out
        in log space do not outweigh the rest. Default: the labels' own space.
    loss : {"mse", "cross_entropy"}
        ``"cross_entropy"`` for a classifier (logits out, one-hot labels): training minimises
        it and every ``*_rmse`` of the history holds the mean cross-entropy instead; the accept
        rule's floor (a share of the label spread) does not apply.
    progress_label : str, optional
        The progress bar's description (default "pruning attempts").

    Returns
    -------
    PruneResult
    """
    adapter.check_model(model)
    w0 = adapter.widths(model)
    check_dataset(dataset, w0[0], w0[-1])
    rounds = _check_count("rounds", rounds)
    steps = _check_count("steps", steps)
    initial_steps = steps if initial_steps is None else _check_count("initial_steps", initial_steps)
    final_steps = steps if final_steps is None else _check_count("final_steps", final_steps)
    lamb = _check_nonneg("lamb", lamb)
    schedule = DEFAULT_SCHEDULE if schedule is None else schedule
    if tol is not None:
        schedule = replace(schedule, tol=_check_nonneg("tol", tol))
    pruner = EMPPruner(target="both") if pruner is None else pruner
    if not all(hasattr(pruner, a) for a in ("keep_edges", "keep_nodes", "backed_off")):
        raise TypeError(f"pruner must be an EMPPruner or ThresholdPruner, got {pruner!r}")
    fit, val = split_validation(dict(dataset), schedule.validation_fraction)
    x_fit = fit["train_input"]

    current = adapter.clone_model(model)
    start = time.perf_counter()
    adapter.fit(current, fit, initial_steps, lamb, seed, opt=opt, update_grid=update_grid,
                loss=loss)  # fmt: skip
    seconds_initial = time.perf_counter() - start
    losses = _rmse3(current, fit, val, dataset, label_map, loss)
    if not all(math.isfinite(v) for v in losses):
        raise RuntimeError(
            "the initial training diverged (non-finite loss); try a smaller lamb, fewer steps "
            "or standardised data"
        )
    init_losses = losses
    labels = fit["train_label"] if label_map is None else label_map(fit["train_label"])
    # The floor is a share of the labels' spread: it means nothing for class labels.
    label_std = float(labels.double().std()) if x_fit.shape[0] > 1 and loss == "mse" else 0.0
    limit = schedule.accept_below(losses[1], label_std)
    node_ids = [list(range(w)) for w in w0]
    pruned_round = [
        np.full((w_out, w_in), -1, dtype=int) for w_in, w_out in zip(w0[:-1], w0[1:], strict=True)
    ]
    for layer, m in enumerate(adapter.get_edge_masks(current)):
        pruned_round[layer][~m.numpy()] = 0  # dead before the first round
    history: list[RoundRecord] = []

    bar = tqdm(total=schedule.max_attempts, desc=progress_label or "pruning attempts",
               disable=not progress, leave=False)  # fmt: skip
    stop_reason = f"round cap: {rounds} accepted rounds"
    start_rung, attempts, accepted_rounds = 0, 0, 0
    while accepted_rounds < rounds:
        r = accepted_rounds + 1
        outcome = "exhausted"
        rejected_removals: set = set()
        for rung in range(start_rung, start_rung + schedule.max_rungs + 1):
            if attempts >= schedule.max_attempts:
                outcome = "budget"
                break
            rung_pruner = schedule.rung(pruner, rung)
            t0 = time.perf_counter()
            step = prune_step(current, x_fit, rung_pruner, node_ids)
            seconds_pruning = time.perf_counter() - t0
            after_prune = _rmse3(step.model, fit, val, dataset, label_map, loss)
            edges_alive, nodes_alive = _count_alive(step.model)
            record = RoundRecord(
                round=r, accepted=False, status="",
                layers=[asdict(d) for d in step.decisions],
                train_rmse_before=losses[0], test_rmse_before=losses[2],
                train_rmse_after_prune=after_prune[0], test_rmse_after_prune=after_prune[2],
                train_rmse_after_retrain=math.nan, test_rmse_after_retrain=math.nan,
                edges_alive=edges_alive, nodes_alive=nodes_alive,
                widths=adapter.widths(step.model),
                removed_edges=step.removed_edges, removed_nodes=step.removed_nodes,
                seconds_train=0.0, seconds_score=step.seconds_score,
                seconds_prune=seconds_pruning - step.seconds_score, warnings=step.warnings,
                attempt=len(history) + 1, rung=rung, pruner=repr(rung_pruner),
                val_rmse_before=losses[1], val_rmse_after_prune=after_prune[1],
                accept_below=limit,
            )  # fmt: skip
            if not step.removed_edges and not step.removed_nodes:
                record.edges_alive, record.nodes_alive = _count_alive(current)
                if rung_pruner.target != pruner.target:
                    # Nodes only (or edges only) removed nothing; the other half may.
                    record.status = f"nothing removed at rung {rung} ({rung_pruner.target} only)"
                    history.append(record)
                    continue
                # A gentler rung of the full target keeps a superset: nothing more can go.
                record.status = f"fixed point: nothing removed at rung {rung}"
                history.append(record)
                outcome = "fixed point"
                break
            removal = (frozenset(map(tuple, step.removed_edges)),
                       frozenset(map(tuple, step.removed_nodes)))  # fmt: skip
            if removal in rejected_removals:
                record.status = "skipped: removes what a rejected attempt of this round removed"
                record.edges_alive, record.nodes_alive = _count_alive(current)
                record.widths = adapter.widths(current)
                history.append(record)
                continue
            attempts += 1
            t1 = time.perf_counter()
            retrained, failure = _retrain_and_judge(step.model, (fit, val, dataset), steps,
                                                    lamb, seed + attempts, schedule, opt,
                                                    update_grid, label_map, loss)  # fmt: skip
            record.seconds_train = time.perf_counter() - t1
            record.train_rmse_after_retrain = retrained[0]
            record.val_rmse_after_retrain = retrained[1]
            record.test_rmse_after_retrain = retrained[2]
            bar.update(1)
            if math.isfinite(retrained[1]) and retrained[1] <= limit:
                record.accepted, record.status = True, "accepted"
                history.append(record)
                for layer, o, i in step.removed_edges:
                    if pruned_round[layer][o, i] < 0:
                        pruned_round[layer][o, i] = r
                current, node_ids, losses = step.model, step.node_ids, retrained
                start_rung, outcome = rung, "accepted"
                bar.set_postfix(edges=edges_alive, val_rmse=f"{retrained[1]:.3g}")
                break
            record.status = failure or (f"rejected: validation RMSE {retrained[1]:.4g} after "
                                        f"retraining > limit {limit:.4g}; backing off")  # fmt: skip
            record.edges_alive, record.nodes_alive = _count_alive(current)
            record.widths = adapter.widths(current)
            history.append(record)
            rejected_removals.add(removal)
            log.info("attempt %d (round %d, rung %d) %s", record.attempt, r, rung, record.status)
        if outcome == "accepted":
            accepted_rounds += 1
            continue
        stop_reason = {
            "fixed point": "fixed point: the gentlest step that removes something was accepted "
                           "or nothing is left to remove",
            "exhausted": f"fixed point: every rung up to {start_rung + schedule.max_rungs} was "
                         "rejected",
            "budget": f"budget: {schedule.max_attempts} attempts spent",
        }[outcome]  # fmt: skip
        break
    bar.close()
    start = time.perf_counter()
    polished = adapter.clone_model(current)
    adapter.fit(polished, fit, final_steps, 0.0, seed + attempts + 1, opt=opt,
                update_grid=update_grid, loss=loss)  # fmt: skip
    seconds_final = time.perf_counter() - start
    final = _rmse3(polished, fit, val, dataset, label_map, loss)
    if math.isfinite(final[1]) and final[1] <= max(losses[1], limit):
        current = polished
    else:
        log.warning("the final retraining made the validation RMSE worse; returning the model "
                    "before it")  # fmt: skip
        final = losses
    return PruneResult(
        model=current,
        history=history,
        node_ids=node_ids,
        edge_pruned_round=pruned_round,
        initial_widths=w0,
        initial_train_rmse=init_losses[0],
        initial_test_rmse=init_losses[2],
        seconds_initial_train=seconds_initial,
        pruner=repr(pruner),
        final_train_rmse=final[0],
        final_test_rmse=final[2],
        seconds_final_train=seconds_final,
        stop_reason=stop_reason,
        initial_val_rmse=init_losses[1],
        final_val_rmse=final[1],
        accept_below=limit,
        schedule=asdict(schedule),
    )
