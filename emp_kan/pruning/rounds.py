"""The round loop: train -> score -> prune -> compact -> retrain, with rollback.

Node and edge ids in the history are the ids of the model given to :func:`prune_rounds`
("original ids"), whatever structural removals happened since.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from emp_kan._runtime import threads
from emp_kan._runtime.checks import check_finite_nonneg, check_whole
from emp_kan._runtime.memo import Memo
from emp_kan.data.split import Split
from emp_kan.kan import adapter
from emp_kan.kan.fast.train import data_loss
from emp_kan.kan.training import check_dataset
from emp_kan.pruning.pruners import EMPPruner, ThresholdPruner
from emp_kan.pruning.records import PruneResult, RoundRecord
from emp_kan.pruning.schedule import (
    DEFAULT_ROUND_STEPS,
    DEFAULT_ROUNDS,
    DEFAULT_SCHEDULE,
    Schedule,
)
from emp_kan.pruning.step import StepOutcome, prune_step

LabelMap = Callable[[torch.Tensor], torch.Tensor]
log = logging.getLogger("emp_kan")

__all__ = ["prune_rounds"]


# --- input checks -------------------------------------------------------------------------


# --- records ------------------------------------------------------------------------------


# --- one pruning step ---------------------------------------------------------------------


# --- training and the loop ----------------------------------------------------------------


def _rmse(
    model, x: torch.Tensor, y: torch.Tensor, label_map: LabelMap | None, loss: str = "mse"
) -> float:
    """RMSE (after ``label_map``), or the mean cross-entropy for ``loss="cross_entropy"``."""
    if label_map is None and loss == "mse":
        return adapter.rmse(model, x, y)
    with torch.no_grad():
        prediction = adapter.forward_pass(model, x)
        if loss == "cross_entropy":
            return float(data_loss(prediction, y, loss))
        return float(torch.sqrt(torch.mean((label_map(prediction) - label_map(y)) ** 2)))


def _rmse3(
    model,
    fit: Mapping[str, torch.Tensor],
    val: Mapping[str, torch.Tensor],
    dataset: Mapping[str, torch.Tensor],
    label_map: LabelMap | None = None,
    loss: str = "mse",
) -> tuple[float, float, float]:
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


def _retrain_and_judge(
    model: Any, ctx: _Context, seed: int
) -> tuple[tuple[float, float, float], str]:
    """Retrain a pruned ``model`` in place on the fit rows; return the losses it is judged on
    and, when training failed, a "rejected: ..." status."""
    nan3 = (math.nan, math.nan, math.nan)
    try:
        ctx.fit(model, ctx.steps, ctx.lamb, seed)
        losses = ctx.losses(model)
        if not math.isfinite(losses[1]):
            return losses, "rejected: retraining diverged (non-finite validation loss)"
        if ctx.lamb > 0 and ctx.schedule.judge_steps > 0:
            # The sparsity penalty costs accuracy that a short plain fit gives back; judge the
            # pruned structure on what it can fit, not on the penalised fit.
            judged = adapter.clone_model(model)
            ctx.fit(judged, ctx.schedule.judge_steps, 0.0, seed)
            losses = ctx.losses(judged)
    except (RuntimeError, ValueError, torch.linalg.LinAlgError) as exc:  # pykan's solvers
        log.info("retraining failed: %s", exc)
        return nan3, f"rejected: retraining failed ({type(exc).__name__})"
    return losses, ""


@dataclass
class _Context:
    """What every attempt of one run reads: the rows, the pruner, the budget and the limit."""

    splits: tuple[
        Mapping[str, torch.Tensor], Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]
    ]  # (fit, validation, the whole dataset)
    pruner: EMPPruner | ThresholdPruner
    schedule: Schedule
    steps: int
    lamb: float
    seed: int
    opt: str
    update_grid: bool
    label_map: LabelMap | None
    loss: str
    memo: Memo | None
    early_stopping: bool = False
    limit: float = math.inf  # set once the unpruned model's validation loss is known

    def losses(self, model: Any) -> tuple[float, float, float]:
        return _rmse3(model, *self.splits, self.label_map, self.loss)

    def fit(self, model: Any, steps: int, lamb: float, seed: int) -> None:
        adapter.fit(
            model,
            self.splits[0],
            steps,
            lamb,
            seed,
            opt=self.opt,
            update_grid=self.update_grid,
            loss=self.loss,
            memo=self.memo,
            early_stopping=self.early_stopping,
        )


@dataclass
class _Loop:
    """What the loop carries from one attempt to the next."""

    model: Any
    node_ids: list[list[int]]
    losses: tuple[float, float, float]  # (fit, validation, test) of ``model``
    pruned_round: list[np.ndarray]  # per layer (out, in): the round an edge went, -1 alive
    history: list[RoundRecord] = field(default_factory=list)
    attempts: int = 0
    start_rung: int = 0


def _context(
    data: tuple[Mapping[str, torch.Tensor] | Split, list[int]],
    pruner: Any,
    training: tuple[int, float, int, str, bool, str, bool],
    schedule: Schedule | None,
    label_map: LabelMap | None,
    memo: Memo | None,
) -> _Context:
    """The run's context (``data``: the dataset and the model's widths; ``training``: steps,
    lamb, seed, opt, update_grid, loss, early_stopping), or ValueError/TypeError for settings
    that cannot work."""
    dataset, widths = data
    steps, lamb, seed, opt, update_grid, loss, early_stopping = training
    check_dataset(dataset.dataset if isinstance(dataset, Split) else dataset, widths[0], widths[-1])
    schedule = DEFAULT_SCHEDULE if schedule is None else schedule
    rows = Split.of(dataset, schedule.validation_fraction)
    pruner = EMPPruner(target="both") if pruner is None else pruner
    if not all(hasattr(pruner, a) for a in ("keep_edges", "keep_nodes", "backed_off")):
        raise TypeError(f"pruner must be an EMPPruner or ThresholdPruner, got {pruner!r}")
    return _Context(
        (rows.fit, rows.validation, rows.dataset),
        pruner,
        schedule,
        check_whole("steps", steps),
        check_finite_nonneg("lamb", lamb),
        seed,
        opt,
        update_grid,
        label_map,
        loss,
        memo,
        early_stopping,
    )


def _start(model: Any, ctx: _Context, initial_steps: int) -> tuple[_Loop, float]:
    """Train a copy of ``model`` for ``initial_steps``; the loop's first state and the seconds
    it took. Sets ``ctx.limit``, the accept rule's bound for the whole run."""
    current = adapter.clone_model(model)
    start = time.perf_counter()
    ctx.fit(current, initial_steps, ctx.lamb, ctx.seed)
    seconds = time.perf_counter() - start
    losses = ctx.losses(current)
    if not all(math.isfinite(v) for v in losses):
        raise RuntimeError(
            "the initial training diverged (non-finite loss); try a smaller lamb, fewer steps "
            "or standardised data"
        )
    fit = ctx.splits[0]
    labels = fit["train_label"] if ctx.label_map is None else ctx.label_map(fit["train_label"])
    # The floor is a share of the labels' spread: it means nothing for class labels.
    spread = float(labels.double().std()) if labels.shape[0] > 1 and ctx.loss == "mse" else 0.0
    ctx.limit = ctx.schedule.accept_below(losses[1], spread)
    widths = adapter.widths(model)
    pruned_round = [
        np.full((w_out, w_in), -1, dtype=int)
        for w_in, w_out in zip(widths[:-1], widths[1:], strict=True)
    ]
    for layer, mask in enumerate(adapter.get_edge_masks(current)):
        pruned_round[layer][~mask.numpy()] = 0  # dead before the first round
    return _Loop(current, [list(range(w)) for w in widths], losses, pruned_round), seconds


def _pruned(
    loop: _Loop, ctx: _Context, r: int, rung: int, rung_pruner: Any
) -> tuple[StepOutcome, RoundRecord]:
    """One prune of the current model by ``rung_pruner`` and its record, not yet judged."""
    start = time.perf_counter()
    step = prune_step(loop.model, ctx.splits[0]["train_input"], rung_pruner, loop.node_ids)
    seconds_pruning = time.perf_counter() - start
    after_prune = ctx.losses(step.model)
    edges_alive, nodes_alive = _count_alive(step.model)
    record = RoundRecord(
        round=r,
        accepted=False,
        status="",
        layers=[asdict(d) for d in step.decisions],
        train_rmse_before=loop.losses[0],
        test_rmse_before=loop.losses[2],
        train_rmse_after_prune=after_prune[0],
        test_rmse_after_prune=after_prune[2],
        train_rmse_after_retrain=math.nan,
        test_rmse_after_retrain=math.nan,
        edges_alive=edges_alive,
        nodes_alive=nodes_alive,
        widths=adapter.widths(step.model),
        removed_edges=step.removed_edges,
        removed_nodes=step.removed_nodes,
        seconds_train=0.0,
        seconds_score=step.seconds_score,
        seconds_prune=seconds_pruning - step.seconds_score,
        warnings=step.warnings,
        attempt=len(loop.history) + 1,
        rung=rung,
        pruner=repr(rung_pruner),
        val_rmse_before=loop.losses[1],
        val_rmse_after_prune=after_prune[1],
        accept_below=ctx.limit,
    )
    return step, record


def _as_current(record: RoundRecord, loop: _Loop) -> RoundRecord:
    """``record`` describing the model the loop goes on with (an attempt not taken)."""
    record.edges_alive, record.nodes_alive = _count_alive(loop.model)
    record.widths = adapter.widths(loop.model)
    return record


def _judged(
    loop: _Loop, ctx: _Context, step: StepOutcome, record: RoundRecord, r: int, rung: int, bar: Any
) -> bool:
    """Retrain the pruned model and accept it (the loop goes on from it) or roll it back;
    whether it was accepted. The record goes to the history either way."""
    loop.attempts += 1
    start = time.perf_counter()
    retrained, failure = _retrain_and_judge(step.model, ctx, ctx.seed + loop.attempts)
    record.seconds_train = time.perf_counter() - start
    (
        record.train_rmse_after_retrain,
        record.val_rmse_after_retrain,
        record.test_rmse_after_retrain,
    ) = retrained
    bar.update(1)
    if math.isfinite(retrained[1]) and retrained[1] <= ctx.limit:
        record.accepted, record.status = True, "accepted"
        loop.history.append(record)
        for layer, o, i in step.removed_edges:
            if loop.pruned_round[layer][o, i] < 0:
                loop.pruned_round[layer][o, i] = r
        loop.model, loop.node_ids, loop.losses = step.model, step.node_ids, retrained
        loop.start_rung = rung
        bar.set_postfix(edges=record.edges_alive, val_rmse=f"{retrained[1]:.3g}")
        return True
    record.status = failure or (
        f"rejected: validation RMSE {retrained[1]:.4g} after "
        f"retraining > limit {ctx.limit:.4g}; backing off"
    )
    loop.history.append(_as_current(record, loop))
    log.info("attempt %d (round %d, rung %d) %s", record.attempt, r, rung, record.status)
    return False


def _round(loop: _Loop, ctx: _Context, r: int, bar: Any) -> str:
    """Round ``r``: rungs from the loop's start rung, gentler each time, until one is
    accepted. Returns "accepted", "fixed point", "exhausted" or "budget"."""
    rejected: set = set()
    for rung in range(loop.start_rung, loop.start_rung + ctx.schedule.max_rungs + 1):
        if loop.attempts >= ctx.schedule.max_attempts:
            return "budget"
        rung_pruner = ctx.schedule.rung(ctx.pruner, rung)
        step, record = _pruned(loop, ctx, r, rung, rung_pruner)
        if not step.removed_edges and not step.removed_nodes:
            record.edges_alive, record.nodes_alive = _count_alive(loop.model)
            loop.history.append(record)
            if rung_pruner.target != ctx.pruner.target:
                # Nodes only (or edges only) removed nothing; the other half may.
                record.status = f"nothing removed at rung {rung} ({rung_pruner.target} only)"
                continue
            # A gentler rung of the full target keeps a superset: nothing more can go.
            record.status = f"fixed point: nothing removed at rung {rung}"
            return "fixed point"
        removal = (
            frozenset(map(tuple, step.removed_edges)),
            frozenset(map(tuple, step.removed_nodes)),
        )
        if removal in rejected:
            record.status = "skipped: removes what a rejected attempt of this round removed"
            loop.history.append(_as_current(record, loop))
            continue
        if _judged(loop, ctx, step, record, r, rung, bar):
            return "accepted"
        rejected.add(removal)
    return "exhausted"


def _stop_reason(outcome: str, loop: _Loop, ctx: _Context) -> str:
    return {
        "fixed point": "fixed point: the gentlest step that removes something was accepted "
        "or nothing is left to remove",
        "exhausted": f"fixed point: every rung up to {loop.start_rung + ctx.schedule.max_rungs} "
        "was rejected",
        "budget": f"budget: {ctx.schedule.max_attempts} attempts spent",
    }[outcome]


def _polish(loop: _Loop, ctx: _Context, final_steps: int) -> tuple[tuple, float]:
    """Train the last accepted model without regularisation; keep it unless it got worse on
    the validation rows. Returns its losses and the seconds it took."""
    start = time.perf_counter()
    polished = adapter.clone_model(loop.model)
    ctx.fit(polished, final_steps, 0.0, ctx.seed + loop.attempts + 1)
    seconds = time.perf_counter() - start
    final = ctx.losses(polished)
    if math.isfinite(final[1]) and final[1] <= max(loop.losses[1], ctx.limit):
        loop.model = polished
        return final, seconds
    log.warning(
        "the final retraining made the validation RMSE worse; returning the model before it"
    )
    return loop.losses, seconds


@threads.single_threaded
def prune_rounds(
    model: Any,
    dataset: Mapping[str, torch.Tensor] | Split,
    pruner: EMPPruner | ThresholdPruner | None = None,
    rounds: int = DEFAULT_ROUNDS,
    steps: int = DEFAULT_ROUND_STEPS,
    lamb: float = 1e-3,
    initial_steps: int | None = None,
    final_steps: int | None = None,
    seed: int = 0,
    opt: str = "LBFGS",
    update_grid: bool = True,
    early_stopping: bool = False,
    progress: bool = False,
    schedule: Schedule | None = None,
    label_map: LabelMap | None = None,
    loss: str = "mse",
    progress_label: str | None = None,
    memo: Memo | None = None,
) -> PruneResult:
    """Alternate pruning and retraining until nothing more can go (a fixed point).

    Each round tries the pruner; a pruned model that retrains to a validation RMSE above the
    schedule's limit is rolled back and the round retried with a gentler rung (EMP: a larger
    beta; thresholds: smaller ones). The loop ends when no rung removes anything that is
    accepted, or at the ``rounds`` cap, or when the attempt budget is spent. Decisions use only
    validation rows carved from the training rows (:class:`~emp_kan.data.split.Split`); the
    test rows are reported, never used.

    Parameters
    ----------
    model : kan.MultKAN
        Not modified; the loop works on a copy.
    dataset : dict of torch.Tensor or Split
        ``train_input (n, w_0)``, ``train_label (n, w_L)``, ``test_input``, ``test_label``;
        its validation rows are the schedule's ``validation_fraction`` of the training rows,
        or, for a :class:`~emp_kan.data.split.Split`, the ones carved already.
    pruner : EMPPruner or ThresholdPruner
        Default: ``EMPPruner(target="both")``.
    rounds : int
        At most this many accepted rounds (a cap; the loop usually stops at a fixed point).
    steps : int
        Training steps after each pruning attempt.
    lamb : float
        pykan's sparsity regularisation during training.
    initial_steps, final_steps : int, optional
        Training steps before the first round (default ``steps``; 0 for a model trained on
        the same fit rows), and without regularisation on the last accepted model, as pykan's
        tutorial does after pruning (default ``steps``; 0 to skip).
    seed : int
        Seeds every training call (attempt ``a`` uses ``seed + a``).
    opt, update_grid : str, bool
        pykan's optimiser and grid updates while training.
    early_stopping : bool
        Every training ends at its step with the lowest loss on the validation rows (the
        regulariser included while it applies) rather than its last: fits of noisy labels
        stop before they chase the noise, and the unpruned reference and every pruned
        attempt are trained alike.
    progress, progress_label : bool, str
        Show a tqdm bar over attempts, with this description (default "pruning attempts").
    schedule : Schedule, optional
        Accept rule (``tol``, ``floor``), validation rows and back-off ladder; default
        :data:`~emp_kan.pruning.schedule.DEFAULT_SCHEDULE`.
    label_map : callable, optional
        Maps predictions and labels ``(n, 1)`` elementwise to the space the losses are measured
        (and decided) in, e.g. ``torch.exp`` for a KAN of ``log|y|``. Default: the labels' own.
    loss : {"mse", "cross_entropy"}
        ``"cross_entropy"`` for a classifier (logits out, one-hot labels): training minimises
        it and every ``*_rmse`` of the history holds the mean cross-entropy instead; the accept
        rule's floor (a share of the label spread) does not apply.
    memo : Memo, optional
        Results to share with other runs on the same rows (``discover`` passes one to both
        methods, so that a retraining both reach identically is done once).
    """
    adapter.check_model(model)
    widths = adapter.widths(model)
    rounds = check_whole("rounds", rounds)
    training = (steps, lamb, seed, opt, update_grid, loss, early_stopping)
    ctx = _context((dataset, widths), pruner, training, schedule, label_map, memo)
    initial_steps = ctx.steps if initial_steps is None else initial_steps
    final_steps = check_whole("final_steps", ctx.steps if final_steps is None else final_steps)
    loop, seconds_initial = _start(model, ctx, check_whole("initial_steps", initial_steps))
    initial = loop.losses
    stop_reason = _rounds(loop, ctx, rounds, progress, progress_label)
    final, seconds_final = _polish(loop, ctx, final_steps)
    seconds = (seconds_initial, seconds_final)
    return _result(loop, ctx, widths, (initial, final), seconds, stop_reason)


def _rounds(
    loop: _Loop, ctx: _Context, rounds: int, progress: bool, progress_label: str | None
) -> str:
    """Run rounds until one is not accepted or ``rounds`` are; why the loop stopped."""
    bar = tqdm(
        total=ctx.schedule.max_attempts,
        desc=progress_label or "pruning attempts",
        disable=not progress,
        leave=False,
    )
    stop_reason, accepted = f"round cap: {rounds} accepted rounds", 0
    while accepted < rounds:
        outcome = _round(loop, ctx, accepted + 1, bar)
        if outcome != "accepted":
            stop_reason = _stop_reason(outcome, loop, ctx)
            break
        accepted += 1
    bar.close()
    return stop_reason


def _result(
    loop: _Loop, ctx: _Context, widths: list[int], losses: tuple, seconds: tuple, stop_reason: str
) -> PruneResult:
    """The run's result: ``losses`` and ``seconds`` are (initial, final) pairs."""
    (initial, final), (seconds_initial, seconds_final) = losses, seconds
    return PruneResult(
        model=loop.model,
        history=loop.history,
        node_ids=loop.node_ids,
        edge_pruned_round=loop.pruned_round,
        initial_widths=widths,
        initial_train_rmse=initial[0],
        initial_test_rmse=initial[2],
        seconds_initial_train=seconds_initial,
        pruner=repr(ctx.pruner),
        final_train_rmse=final[0],
        final_test_rmse=final[2],
        seconds_final_train=seconds_final,
        stop_reason=stop_reason,
        initial_val_rmse=initial[1],
        final_val_rmse=final[1],
        accept_below=ctx.limit,
        schedule=asdict(ctx.schedule),
    )
