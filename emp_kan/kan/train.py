"""The fast training path: pykan's ``fit`` with the same meaning, without its overhead.

pykan's ``MultKAN.fit`` spends most of its time on work nobody reads: every closure call runs
the full ``forward`` (fan-out copies of every activation, ``clone`` / ``permute`` of each layer's
outputs for plotting, a recursive B-spline basis with a ``nan_to_num`` per level), every step
evaluates the test loss, and the B-spline basis of the first layer is recomputed from the same
inputs on every call. Here a training step computes exactly what the objective needs:

* the forward over pykan's own parameters (``coef``, ``scale_base``, ``scale_sp``, ``mask``,
  node and subnode affines): each layer is one matrix product of its weights (masks and
  scales folded in) with the features ``[silu(x), B(x)]``, kept as ``(in, p, batch)``;
* an analytic backward through the B-spline basis (its derivative from the order k-1 values),
  so autograd never walks the recursion;
* the first layer's features once per grid update (its inputs are the data);
* one flat parameter vector for the optimizer, written back into the model at the end;
* the activation statistics and pykan's sparsity regulariser only when ``lamb > 0``
  (``reg_metric="edge_forward_spline_n"``, ``lamb_l1 = 1``, ``lamb_entropy = 2``, no coefficient
  terms: pykan's defaults);
* pykan's own LBFGS (same history, strong-Wolfe line search, tolerances) or Adam, and pykan's
  own ``update_grid`` every ``stop_grid_update_step / grid_update_num`` steps.

The model stays a pykan model: the same object is trained in place, and its ``forward``,
``plot``, ``prune`` and ``auto_symbolic`` keep working. Models this path does not cover
(multiplication nodes, active symbolic edges) are trained by pykan's ``fit``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch

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

    pykan's ``B_batch`` recursion level by level, written as ``(A x + B) * v_left +
    (C x + D) * v_right`` with ``A..D`` from the grid alone. A degenerate interval (two equal
    knots) has factor 0, which is what pykan's ``nan_to_num`` makes of its 0/0 there. The batch
    is the last, contiguous axis: the elementwise kernels run twice as fast as on
    ``(batch, in, G + k)``.
    """

    def __init__(self, grid: torch.Tensor, k: int) -> None:
        g = grid.detach()[:, :, None]  # (in, m, 1)
        self.k = k
        self.lo, self.hi = g[:, :-1], g[:, 1:]
        self.levels = []
        with torch.no_grad():
            for p in range(1, k + 1):
                inv_left = _safe_inverse(g[:, p:-1] - g[:, : -(p + 1)])
                inv_right = _safe_inverse(g[:, p + 1 :] - g[:, 1:-p])
                self.levels.append((inv_left, -g[:, : -(p + 1)] * inv_left, -inv_right,
                                    g[:, p + 1 :] * inv_right))  # fmt: skip

    def __call__(self, xt: torch.Tensor, derivative: bool = False):
        """Basis values of ``xt (in, batch)``, ``(in, G + k, batch)``, and with ``derivative``
        their derivatives in ``x`` (else None).

        The derivative of an order-k B-spline is ``k * (B_{i,k-1} / (t_{i+k} - t_i) -
        B_{i+1,k-1} / (t_{i+k+1} - t_{i+1}))``: the order k-1 values and the last level's
        reciprocals give it at the cost of three products.
        """
        x = xt[:, None, :]
        value = ((x >= self.lo) & (x < self.hi)).to(xt.dtype)
        previous = value
        for a, b, c, d in self.levels:
            previous = value
            value = torch.addcmul(b, x, a) * value[:, :-1] + torch.addcmul(d, x, c) * value[:, 1:]
        if not derivative:
            return value, None
        if self.k == 0:
            return value, torch.zeros_like(value)
        inv_left, _, minus_inv_right, _ = self.levels[-1]
        slope = self.k * (inv_left * previous[:, :-1] + minus_inv_right * previous[:, 1:])
        return value, slope


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
        self._range0: torch.Tensor | None = None
        # Node affines that are not trained and hold their initial 1 * x + 0 can be skipped.
        self.identity = set()
        for name, value in (("subnode_scale", 1.0), ("subnode_bias", 0.0), ("node_scale", 1.0),
                            ("node_bias", 0.0)):  # fmt: skip
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

    def __call__(self, x: torch.Tensor, with_scales: bool,
                 views: dict | None = None) -> tuple[torch.Tensor, list]:  # fmt: skip
        """Outputs ``(batch, out)`` and, with ``with_scales``, pykan's ``acts_scale_spline``
        (per layer, ``(out, in)``: std over the batch of each edge's output over the std of its
        input + 0.1)."""
        views = views or {}
        model = self.model
        scales = []
        cached = x is self.x_train
        xt = self.x0t if cached else x[:, self.input_id].T.contiguous()
        for i, layer in enumerate(self.layers):
            first = i == 0 and cached
            features = self.features0 if first else _Features.apply(xt, self.bases[i])
            coef = self._get(views, "coef", i, layer.coef)
            scale_base = self._get(views, "scale_base", i, layer.scale_base)
            scale_sp = self._get(views, "scale_sp", i, layer.scale_sp)
            weights = torch.cat([(layer.mask * scale_base)[:, None, :],
                                 (coef * (layer.mask * scale_sp)[:, :, None]).permute(0, 2, 1)],
                                dim=1)  # (in, p, out)  # fmt: skip
            if with_scales:
                if first:
                    moment, input_range = self._first_layer_stats()
                else:
                    moment = _centred_second_moment(features)
                    input_range = torch.std(xt, dim=1) + 0.1
                variance = ((moment @ weights) * weights).sum(dim=1)  # (in, out)
                # A dead edge has variance 0, where sqrt's slope is infinite; pykan's masked
                # edges contribute nothing, so clamp before the root.
                std = torch.sqrt(torch.clamp(variance, min=1e-30))
                scales.append((std / input_range[:, None]).T)
            n_out = weights.shape[2]
            xt = weights.reshape(-1, n_out).T @ features.reshape(-1, features.shape[2])
            for scale, bias in (("subnode_scale", "subnode_bias"), ("node_scale", "node_bias")):
                if (scale, i) in self.identity and (bias, i) in self.identity:
                    continue  # an untrained affine that is still x -> 1 * x + 0
                xt = (self._get(views, scale, i, getattr(model, scale)[i])[:, None] * xt
                      + self._get(views, bias, i, getattr(model, bias)[i])[:, None])
        return xt.T, scales


def kan_forward(model: Any, x: torch.Tensor) -> torch.Tensor:
    """The outputs ``(batch, out)`` of a model :func:`supports`, as pykan's ``forward`` gives."""
    return _Forward(model, x)(x, with_scales=False)[0]


def _regulariser(scales: list[torch.Tensor], lamb_l1: float = 1.0,
                 lamb_entropy: float = 2.0) -> torch.Tensor:  # fmt: skip
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


def _restore(params: Any, flat: torch.Tensor, step: int, steps: int) -> None:
    with torch.no_grad():
        params.flat.copy_(flat)
    log.info("training stopped at step %d of %d: the loss became non-finite; the last "
             "parameters with a finite loss are kept", step + 1, steps)


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
    make_lbfgs: Any = None,
    loss: str = "mse",
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
    make_lbfgs : callable, optional
        ``params -> optimizer``: pykan's LBFGS with pykan's settings (the adapter passes it);
        default: torch's LBFGS with the same settings.
    loss : {"mse", "cross_entropy"}
        Squared error, or cross-entropy of the outputs (logits) against one-hot or
        class-probability labels ``(n, classes)`` (pykan's ``loss_fn`` for classification).

    Returns
    -------
    list of float
        The training RMSE (cross-entropy) after each step.
    """
    if opt not in ("LBFGS", "Adam"):
        raise ValueError(f"opt must be 'LBFGS' or 'Adam', got {opt!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    x_train, y_train = dataset["train_input"], dataset["train_label"]
    params = _Parameters(model)
    if opt == "LBFGS":
        if make_lbfgs is None:
            optimizer = torch.optim.LBFGS([params.flat], lr=lr, history_size=10,
                                          line_search_fn="strong_wolfe", tolerance_grad=1e-32,
                                          tolerance_change=1e-32)  # fmt: skip
        else:
            optimizer = make_lbfgs([params.flat])
    else:
        optimizer = torch.optim.Adam([params.flat], lr=lr)
    grid_update_freq = max(1, int(stop_grid_update_step / grid_update_num))
    forward = _Forward(model, x_train)
    losses: list[float] = []
    state: dict[str, float] = {}
    good = None  # the last parameters seen to give a finite loss

    def closure() -> torch.Tensor:
        params.flat.grad = None  # optimizer.zero_grad() costs more than the backward here
        pred, scales = forward(x_train, with_scales=lamb > 0, views=params.views())
        train_loss = data_loss(pred, y_train, loss)
        state["train_loss"] = float(train_loss.detach())
        state.setdefault("first_loss", state["train_loss"])
        objective = train_loss + lamb * _regulariser(scales) if lamb > 0 else train_loss
        objective.backward()
        return objective

    try:
        for step in range(steps):
            if update_grid and step % grid_update_freq == 0 and step < stop_grid_update_step:
                params.store()
                with torch.no_grad():
                    model.update_grid(x_train)
                params.load()
                forward = _Forward(model, x_train)
            before = params.flat.detach().clone()
            state.pop("first_loss", None)
            if opt == "LBFGS":
                optimizer.step(closure)
            else:
                closure()
                optimizer.step()
            # The first evaluation of a step is at its starting point: a finite one vouches
            # for those parameters. A diverged fit would poison the next grid update (lstsq on
            # NaN); the last vouched-for parameters are kept and training stops.
            if math.isfinite(state["first_loss"]):
                good = before
            if not (math.isfinite(state["first_loss"]) and math.isfinite(state["train_loss"])
                    and bool(torch.isfinite(params.flat).all())):  # fmt: skip
                _restore(params, good if good is not None else before, step, steps)
                break
            value = state["train_loss"]
            losses.append(math.sqrt(value) if loss == "mse" else value)
        else:
            if good is not None and not math.isfinite(_loss_at(forward, params, x_train, y_train)):
                _restore(params, good, steps - 1, steps)
    finally:
        params.store()
    return losses
