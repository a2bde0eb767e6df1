"""The fast training path: pykan's ``fit`` with the same meaning, without its overhead.

pykan's ``MultKAN.fit`` spends most of its time on work nobody reads: every closure call runs
the full ``forward`` (fan-out copies of every activation, ``clone`` / ``permute`` of each layer's
outputs for plotting, a recursive B-spline basis with a ``nan_to_num`` per level), every step
evaluates the test loss, and the B-spline basis of the first layer is recomputed from the same
inputs on every call. Here a training step computes exactly what the objective needs:

* the objective and its gradient as compiled loops in float64
  (:meth:`_Forward.objective_and_gradient`, :mod:`emp_kan.kan.fast.kernels`) over pykan's own
  parameters (``coef``, ``scale_base``, ``scale_sp``, ``mask``, node and subnode affines):
  per point only the k+1 B-spline functions that are not 0 there, the basis's derivative from
  its order k-1 values, the regulariser's gradient from its closed form; autograd's
  bookkeeping, which costs more than the arithmetic on models this small, never runs;
* the first layer's basis once per grid update (its inputs are the data);
* one flat float64 parameter vector for the optimizer, written back into the model (float32,
  as pykan keeps it) before each grid update and at the end;
* the activation statistics and pykan's sparsity regulariser only when ``lamb > 0``
  (``reg_metric="edge_forward_spline_n"``, ``lamb_l1 = 1``, ``lamb_entropy = 2``, no coefficient
  terms: pykan's defaults);
* pykan's LBFGS step (same history, pykan's strong-Wolfe line search, tolerances) or Adam over
  that vector, in numpy (:mod:`emp_kan.kan.fast.optim`: no ``torch.optim``, whose first use imports
  ``torch._dynamo`` for a second), and pykan's own grid update every
  ``stop_grid_update_step / grid_update_num`` steps, fed by a lean torch forward
  (:class:`_Forward`, which also gives :func:`kan_forward`).

The model stays a pykan model: the same object is trained in place, and its ``forward``,
``plot``, ``prune`` and ``auto_symbolic`` keep working. Models this path does not cover
(multiplication nodes, active symbolic edges) are trained by pykan's ``fit``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from emp_kan.kan.fast.objective import CompiledObjective
from emp_kan.kan.fast.optim import FlatAdam, FlatLBFGS

__all__ = ["LOSSES", "data_loss", "fast_fit", "kan_forward", "supports"]

LOSSES = ("mse", "cross_entropy")

log = logging.getLogger("emp_kan")


def supports(model: Any) -> bool:
    """Whether :func:`fast_fit` covers ``model``: sum nodes only, no active symbolic edge."""
    if any(int(w[1]) != 0 for w in model.width):
        return False
    return not any(bool(torch.any(s.mask != 0)) for s in model.symbolic_fun)


class _Basis:
    """B-spline bases on a layer's grid, in the ``(in, G + k, batch)`` layout, with every
    grid-only factor computed once.

    pykan's ``B_batch`` recursion level by level. With ``w_j = (x - t_j) / (t_{j+p} - t_j)``
    the right factor of Cox-de Boor's step is ``1 - w_{j+1}``, so a level is
    ``B_j = w_j B'_j + B'_{j+1} - w_{j+1} B'_{j+1}``: one product ``u = w B'`` and two
    shifted sums, four kernels in all. A degenerate interval (two equal knots) has factor 0,
    which is what pykan's ``nan_to_num`` makes of its 0/0 there (the basis function it
    multiplies is 0 on such an interval anyway). The batch is the last, contiguous axis: the
    elementwise kernels run twice as fast as on ``(batch, in, G + k)``.
    """

    def __init__(self, grid: torch.Tensor, k: int) -> None:
        g = grid.detach()[:, :, None]  # (in, m, 1)
        self.k = k
        self.knots = g
        self.levels = []
        with torch.no_grad():
            for p in range(1, k + 1):
                inverse = _safe_inverse(g[:, p:] - g[:, :-p])  # (in, m - p, 1)
                self.levels.append((inverse, -g[:, :-p] * inverse))
            self.slope_factor = k * self.levels[-1][0] if k > 0 else None

    def __call__(self, xt: torch.Tensor, derivative: bool = False):
        """Basis values of ``xt (in, batch)``, ``(in, G + k, batch)``, and with ``derivative``
        their derivatives in ``x`` (else None).

        The derivative of an order-k B-spline is ``k * (B'_j / (t_{j+k} - t_j) -
        B'_{j+1} / (t_{j+k+1} - t_{j+1}))`` with ``B'`` the order k-1 values: two kernels.
        """
        x = xt[:, None, :]
        # Knots are sorted: [t_j <= x < t_{j+1}] is the difference of two steps.
        step = (x >= self.knots).to(xt.dtype)
        value = step[:, :-1] - step[:, 1:]
        previous = value
        for inverse, offset in self.levels:
            previous = value
            u = torch.addcmul(offset, x, inverse) * value
            value = (value[:, 1:] - u[:, 1:]).add_(u[:, :-1])
        if not derivative:
            return value, None
        if self.k == 0:
            return value, torch.zeros_like(value)
        q = self.slope_factor * previous
        return value, q[:, :-1] - q[:, 1:]


def _safe_inverse(den: torch.Tensor) -> torch.Tensor:
    """``1 / den`` with 0 where ``den == 0``."""
    return torch.where(den == 0, torch.zeros_like(den), 1.0 / den)


class _Features(torch.autograd.Function):
    """Each input's features ``[silu(x), B_0(x), ..., B_{G+k-1}(x)]`` as ``(in, G + k + 1,
    batch)`` from ``xt (in, batch)``, with an analytic backward (the B-spline derivative and
    silu's), so that autograd never walks the basis recursion.

    A KAN layer is linear in its features: edge ``(i, o)`` outputs ``W[i, :, o] @ features[i]``
    with ``W[i, 0, o] = mask * scale_base`` and ``W[i, 1:, o] = mask * scale_sp * coef[i, o]``.
    """

    @staticmethod
    def forward(ctx, xt, basis_fn):  # noqa: D102 - autograd protocol
        basis, slope = basis_fn(xt, derivative=ctx.needs_input_grad[0])
        sig = torch.sigmoid(xt)
        ctx.save_for_backward(xt, sig, slope)
        return torch.cat([(xt * sig)[:, None, :], basis], dim=1)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102 - autograd protocol
        xt, sig, slope = ctx.saved_tensors
        silu_slope = sig * (1 + xt * (1 - sig))
        return grad[:, 0, :] * silu_slope + (grad[:, 1:, :] * slope).sum(dim=1), None


def _centred_second_moment(features: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance of each input's features over the batch, ``(in, p, p)``."""
    centred = features - features.mean(dim=2, keepdim=True)
    return centred @ centred.transpose(1, 2) / max(features.shape[2] - 1, 1)


class _Parameters:
    """The trainable tensors the forward reads, as views of one flat leaf vector.

    One flat vector makes every optimizer step a handful of vector operations instead of a loop
    over pykan's parameter list. :meth:`store` writes it back into the model; :meth:`load`
    re-reads the model (after a grid update changed ``coef``).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.entries: list[tuple[str, int, torch.nn.Parameter]] = []
        for name in ("coef", "scale_base", "scale_sp"):
            for i, layer in enumerate(model.act_fun):
                param = getattr(layer, name)
                if param.requires_grad:
                    self.entries.append((name, i, param))
        for name in ("subnode_scale", "subnode_bias", "node_scale", "node_bias"):
            for i, param in enumerate(getattr(model, name)):
                if param.requires_grad:
                    self.entries.append((name, i, param))
        total = sum(p.numel() for _, _, p in self.entries)
        self.flat = torch.zeros(total, dtype=torch.float32, requires_grad=True)
        self.load()

    def load(self) -> None:
        with torch.no_grad():
            start = 0
            for _, _, param in self.entries:
                self.flat[start : start + param.numel()] = param.detach().reshape(-1)
                start += param.numel()

    def store(self) -> None:
        with torch.no_grad():
            start = 0
            for _, _, param in self.entries:
                param.copy_(self.flat[start : start + param.numel()].view_as(param))
                start += param.numel()

    def views(self) -> dict[tuple[str, int], torch.Tensor]:
        """``(name, layer) -> tensor`` of every trainable entry, as views of the flat vector."""
        out = {}
        start = 0
        for name, i, param in self.entries:
            out[name, i] = self.flat[start : start + param.numel()].view_as(param)
            start += param.numel()
        return out


def _layer_weights(
    mask: torch.Tensor, scale_base: torch.Tensor, scale_sp: torch.Tensor, coef: torch.Tensor
) -> torch.Tensor:
    """A layer's weights on its features, ``(in, p, out)``, masks and scales folded in."""
    return torch.cat(
        [(mask * scale_base)[:, None, :], (coef * (mask * scale_sp)[:, :, None]).permute(0, 2, 1)],
        dim=1,
    )


class _Forward:
    """A pykan model's forward pass for training, over a :class:`_Parameters` vector (or the
    model's own tensors); rebuild after every grid update.

    Activations are kept as ``(width, batch)``. The first layer's features depend on the data
    only, so they (and their covariance, for the regulariser) are computed once here.
    """

    def __init__(self, model: Any, x_train: torch.Tensor) -> None:
        self.model = model
        self.layers = list(model.act_fun)
        self.input_id = model.input_id.long()
        self.bases = [_Basis(layer.grid, layer.k) for layer in self.layers]
        self.x_train = x_train
        self.x0t = x_train[:, self.input_id].T.contiguous()
        with torch.no_grad():
            self.features0 = _Features.apply(self.x0t, self.bases[0])
        self._moment0: torch.Tensor | None = None
        self._compiled: CompiledObjective | None = None
        self._range0: torch.Tensor | None = None
        # Node affines that are not trained and hold their initial 1 * x + 0 can be skipped.
        self.identity = set()
        for name, value in (
            ("subnode_scale", 1.0),
            ("subnode_bias", 0.0),
            ("node_scale", 1.0),
            ("node_bias", 0.0),
        ):
            for i, param in enumerate(getattr(model, name)):
                if not param.requires_grad and bool(torch.all(param == value)):
                    self.identity.add((name, i))

    def _first_layer_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._moment0 is None:
            with torch.no_grad():
                self._moment0 = _centred_second_moment(self.features0)
                self._range0 = torch.std(self.x0t, dim=1) + 0.1
        return self._moment0, self._range0

    def _get(self, views, name: str, i: int, source: Any) -> torch.Tensor:
        return views[name, i] if (name, i) in views else source

    def _weights(self, views: dict, i: int) -> torch.Tensor:
        """Layer ``i``'s weights ``(in, p, out)``."""
        layer = self.layers[i]
        coef = self._get(views, "coef", i, layer.coef)
        scale_sp = self._get(views, "scale_sp", i, layer.scale_sp)
        scale_base = self._get(views, "scale_base", i, layer.scale_base)
        return _layer_weights(layer.mask, scale_base, scale_sp, coef)

    def _affines(self, views: dict, i: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Layer ``i``'s subnode then node affine as ``(scale, bias)``, leaving out an untrained
        one that is still ``x -> 1 * x + 0``."""
        out = []
        for scale_name, bias_name in (
            ("subnode_scale", "subnode_bias"),
            ("node_scale", "node_bias"),
        ):
            if (scale_name, i) in self.identity and (bias_name, i) in self.identity:
                continue
            out.append(
                (
                    self._get(views, scale_name, i, getattr(self.model, scale_name)[i]),
                    self._get(views, bias_name, i, getattr(self.model, bias_name)[i]),
                )
            )
        return out

    def _edge_scales(
        self, first: bool, xt: torch.Tensor, features: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """pykan's ``acts_scale_spline`` of a layer, ``(out, in)``: the std over the batch of
        each edge's output over its input's std + 0.1. ``first``: the layer's inputs are the
        training data, whose statistics are cached."""
        if first:
            moment, input_range = self._first_layer_stats()
        else:
            centred = features - features.mean(dim=2, keepdim=True)
            moment = centred @ centred.transpose(1, 2) / max(features.shape[2] - 1, 1)
            input_range = torch.std(xt, dim=1) + 0.1
        variance = ((moment @ weights) * weights).sum(dim=1)  # (in, out)
        # A dead edge has variance 0, where sqrt's slope is infinite; pykan's masked edges
        # contribute nothing, so clamp before the root.
        return (torch.sqrt(torch.clamp(variance, min=1e-30)) / input_range[:, None]).T

    def __call__(
        self,
        x: torch.Tensor,
        with_scales: bool,
        views: dict | None = None,
        depth: int | None = None,
    ) -> tuple[torch.Tensor, list]:
        """Outputs ``(batch, out)`` and, with ``with_scales``, pykan's ``acts_scale_spline``
        (per layer, ``(out, in)``: std over the batch of each edge's output over the std of its
        input + 0.1). With ``depth``, the activations after that many layers instead (pykan's
        ``acts[depth]``)."""
        views = views or {}
        scales = []
        cached = x is self.x_train
        xt = self.x0t if cached else x[:, self.input_id].T.contiguous()
        for i in range(len(self.layers))[:depth]:
            first = i == 0 and cached
            features = self.features0 if first else _Features.apply(xt, self.bases[i])
            weights = self._weights(views, i)
            if with_scales:
                scales.append(self._edge_scales(first, xt, features, weights))
            n_out = weights.shape[2]
            xt = weights.reshape(-1, n_out).T @ features.reshape(-1, features.shape[2])
            for scale, bias in self._affines(views, i):
                xt = scale[:, None] * xt + bias[:, None]
        return xt.T, scales

    def objective_and_gradient(
        self,
        params: _Parameters,
        labels: torch.Tensor,
        loss: str,
        lamb: float,
        point: np.ndarray | None = None,
    ) -> tuple[float, float, np.ndarray]:
        """The training objective on the training rows and its gradient, without autograd.

        The same quantities as ``data_loss(self(x_train)) + lamb * _regulariser(scales)``
        differentiated by autograd (a test holds them equal), computed by the compiled loops
        of :mod:`emp_kan.kan.fast.kernels` in float64 over each point's live basis functions.

        Parameters
        ----------
        params : _Parameters
            Which tensors are trained, and (without ``point``) their values.
        labels : torch.Tensor, ``(n, w_L)``
        loss : {"mse", "cross_entropy"}
        lamb : float
        point : ndarray, ``(n_params,)``, optional
            float64 values of the trained tensors in ``params.flat``'s layout, instead of it.

        Returns
        -------
        data_loss : float
        objective : float
            Both infinite beyond float32's range, as in the model.
        gradient : ndarray, ``(n_params,)``, float64
            In the layout of ``params.flat``.
        """
        if self._compiled is None:
            self._compiled = CompiledObjective(self, params)
        if point is None:
            point = params.flat.detach().numpy().astype(np.float64)
        return self._compiled(point, labels, loss, lamb)


def _update_grid(model: Any, x: torch.Tensor) -> None:
    """pykan's ``model.update_grid(x)``: layer by layer, the grid from the quantiles of the
    layer's inputs and the coefficients refitted to keep its curves (pykan's own
    ``KANLayer.update_grid_from_samples``), each layer's inputs computed after the layers before
    it changed. pykan runs its full forward once per layer for those inputs; here they come from
    the lean forward."""
    for depth, layer in enumerate(model.act_fun):
        if depth == 0:
            inputs = x[:, model.input_id.long()]
        else:
            inputs = _Forward(model, x)(x, with_scales=False, depth=depth)[0]
        layer.update_grid_from_samples(inputs)


def kan_forward(model: Any, x: torch.Tensor) -> torch.Tensor:
    """The outputs ``(batch, out)`` of a model :func:`supports`, as pykan's ``forward`` gives."""
    return _Forward(model, x)(x, with_scales=False)[0]


def _regulariser(
    scales: list[torch.Tensor], lamb_l1: float = 1.0, lamb_entropy: float = 2.0
) -> torch.Tensor:
    """pykan's ``reg("edge_forward_spline_n", 1, 2, 0, 0)`` on ``(out, in)`` scales."""
    reg = torch.zeros(())
    for vec in scales:
        l1 = torch.sum(vec)
        p_row = vec / (torch.sum(vec, dim=1, keepdim=True) + 1)
        p_col = vec / (torch.sum(vec, dim=0, keepdim=True) + 1)
        entropy_row = -torch.mean(torch.sum(p_row * torch.log2(p_row + 1e-4), dim=1))
        entropy_col = -torch.mean(torch.sum(p_col * torch.log2(p_col + 1e-4), dim=0))
        reg = reg + lamb_l1 * l1 + lamb_entropy * (entropy_row + entropy_col)
    return reg


def data_loss(prediction: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean squared error, or mean cross-entropy of logits ``(n, C)`` against label
    distributions ``(n, C)`` (one-hot for class labels)."""
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(prediction, labels)
    return torch.mean((prediction - labels) ** 2)


def _loss_at(forward: Any, params: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        pred, _ = forward(x, with_scales=False, views=params.views())
        return float(data_loss(pred, y, "mse"))


def _in_float32(vector: np.ndarray) -> bool:
    """Whether every entry is finite and stays finite as the model's float32."""
    return bool(np.all(np.abs(vector) <= np.finfo(np.float32).max))


def _give_back(params: _Parameters, vector: np.ndarray) -> None:
    """The optimiser's float64 ``vector`` into the model's (float32) parameters."""
    with torch.no_grad():
        params.flat.copy_(torch.from_numpy(vector))


def _refreshed_grid(
    model: Any, params: _Parameters, vector: np.ndarray, x_train: torch.Tensor
) -> _Forward:
    """pykan's grid update from the training inputs at the optimiser's point; ``vector``
    takes the updated parameters. Returns the forward pass on the new grids."""
    _give_back(params, vector)
    params.store()
    with torch.no_grad():
        _update_grid(model, x_train)
    params.load()
    vector[:] = params.flat.detach().numpy()
    return _Forward(model, x_train)


def _stop(vector: np.ndarray, kept: np.ndarray, step: int, steps: int) -> None:
    """Put the last parameters with a finite loss back into ``vector``, and say so."""
    vector[:] = kept
    log.info(
        "training stopped at step %d of %d: the loss became non-finite; the last "
        "parameters with a finite loss are kept",
        step + 1,
        steps,
    )


def fast_fit(
    model: Any,
    dataset: Mapping[str, torch.Tensor],
    steps: int,
    lamb: float = 0.0,
    opt: str = "LBFGS",
    update_grid: bool = True,
    lr: float = 1.0,
    grid_update_num: int = 10,
    stop_grid_update_step: int = 50,
    loss: str = "mse",
    early_stopping: bool = False,
) -> list[float]:
    """Train ``model`` in place as ``model.fit(dataset, opt, steps, lamb=lamb, lr=lr)`` would.

    Parameters
    ----------
    model : kan.MultKAN
        A model :func:`supports`; trained in place.
    dataset : dict
        ``train_input (n, w_0)`` and ``train_label (n, w_L)``; the test rows are not used.
    steps : int
    lamb : float
        Weight of pykan's sparsity regulariser (computed only when > 0).
    opt : {"LBFGS", "Adam"}
    update_grid : bool
        pykan's grid update from the training inputs every
        ``stop_grid_update_step // grid_update_num`` steps, before step ``stop_grid_update_step``.
    lr : float
    loss : {"mse", "cross_entropy"}
        Squared error, or cross-entropy of the outputs (logits) against one-hot or
        class-probability labels ``(n, classes)`` (pykan's ``loss_fn`` for classification).
    early_stopping : bool
        End at the step whose objective, with the data term measured on the dataset's
        ``test_input (m, w_0)`` / ``test_label (m, w_L)`` rows, is lowest (grids included),
        instead of at the last step: training that stops where the held-out error is least,
        so that a long fit of noisy labels does not end chasing their noise. Pass validation
        rows there (:attr:`emp_kan.data.split.Split.fit` does), never rows that report.

    Returns
    -------
    list of float
        The training RMSE (cross-entropy) after each step.
    """
    if opt not in ("LBFGS", "Adam"):
        raise ValueError(f"opt must be 'LBFGS' or 'Adam', got {opt!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    params = _Parameters(model)
    # The optimizer works on a float64 copy; the model gets it back (as float32) before every
    # grid update and at the end.
    vector = params.flat.detach().numpy().astype(np.float64)
    optimizer = FlatLBFGS(vector, lr=lr) if opt == "LBFGS" else FlatAdam(vector, lr=lr)
    grid_update_freq = max(1, int(stop_grid_update_step / grid_update_num))
    grid_steps = [
        update_grid and step % grid_update_freq == 0 and step < stop_grid_update_step
        for step in range(steps)
    ]
    best = _BestState(dataset, loss) if early_stopping else None
    try:
        return _run_steps(model, params, vector, optimizer, dataset, (loss, lamb), grid_steps, best)
    finally:
        _give_back(params, vector)
        params.store()


class _BestState:
    """The model state with the lowest held-out objective seen so far (:func:`fast_fit`'s
    ``early_stopping``): the data loss on the dataset's test rows plus the regulariser's share of
    the training objective, so that a penalised fit is judged on what it trains for."""

    def __init__(self, dataset: Mapping[str, torch.Tensor], loss: str) -> None:
        self.x, self.y = dataset["test_input"], dataset["test_label"]
        self.loss = loss
        self.value = math.inf
        self.state: dict[str, torch.Tensor] | None = None
        self.step = 0
        self.offers = 0

    def offer(
        self, model: Any, forward: _Forward, params: _Parameters, vector: np.ndarray, penalty: float
    ) -> None:
        """Keep the model at ``vector`` when it beats the best so far; ``penalty`` is the
        regulariser's part of its training objective."""
        self.offers += 1
        _give_back(params, vector)
        with torch.no_grad():
            prediction, _ = forward(self.x, with_scales=False, views=params.views())
            value = float(data_loss(prediction, self.y, self.loss)) + penalty
        if not value < self.value:  # NaN never wins
            return
        self.value, self.step = value, self.offers
        params.store()
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def restore(self, model: Any, params: _Parameters, vector: np.ndarray, steps: int) -> None:
        """Put the best state back into ``model`` and ``vector`` unless it is the last one
        (``steps``: the number of steps taken; -1 when the last was not offered)."""
        if self.state is None or self.step == steps:
            return
        model.load_state_dict(self.state)
        params.load()
        vector[:] = params.flat.detach().numpy()
        log.debug("training ended at its best held-out step, %d of %d", self.step, steps)


def _run_steps(
    model: Any,
    params: _Parameters,
    vector: np.ndarray,
    optimizer: FlatLBFGS | FlatAdam,
    dataset: Mapping[str, torch.Tensor],
    objective: tuple[str, float],
    grid_steps: list[bool],
    best: _BestState | None = None,
) -> list[float]:
    """:func:`fast_fit`'s steps (a grid update before each step marked in ``grid_steps``) on
    the optimiser's ``vector``; the training RMSE (cross-entropy) after each. With ``best``,
    ``vector`` (and the model's grids) end at the best step it saw."""
    loss, lamb = objective
    steps = len(grid_steps)
    x_train, y_train = dataset["train_input"], dataset["train_label"]
    forward = _Forward(model, x_train)
    losses: list[float] = []
    state: dict[str, float] = {}
    good = None  # the last parameters seen to give a finite loss

    def evaluate(point: np.ndarray) -> tuple[float, np.ndarray]:
        train_loss, value, gradient = forward.objective_and_gradient(
            params, y_train, loss, lamb, point
        )
        state["train_loss"] = train_loss
        state["objective"] = value
        state.setdefault("first_loss", train_loss)
        return value, gradient

    for step in range(steps):
        if grid_steps[step]:
            forward = _refreshed_grid(model, params, vector, x_train)
        before = vector.copy()
        state.pop("first_loss", None)
        optimizer.step(evaluate)
        # The first evaluation of a step is at its starting point: a finite one vouches
        # for those parameters. A diverged fit would poison the next grid update (lstsq on
        # NaN); the last vouched-for parameters are kept and training stops.
        if math.isfinite(state["first_loss"]):
            good = before
        if not (
            math.isfinite(state["first_loss"])
            and math.isfinite(state["train_loss"])
            and _in_float32(vector)
        ):
            _stop(vector, good if good is not None else before, step, steps)
            if best is not None:
                best.restore(model, params, vector, -1)
            return losses
        value = state["train_loss"]
        losses.append(math.sqrt(value) if loss == "mse" else value)
        if best is not None:
            best.offer(model, forward, params, vector, state["objective"] - value)
    _give_back(params, vector)
    if good is not None and not math.isfinite(_loss_at(forward, params, x_train, y_train)):
        _stop(vector, good, steps - 1, steps)
    elif best is not None:
        best.restore(model, params, vector, len(losses))
    return losses
