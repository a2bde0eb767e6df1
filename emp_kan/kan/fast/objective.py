"""The compiled objective of the fast training path: per layer, the compiled basis, forward
and backward loops (:mod:`emp_kan.kan.fast.kernels`) around a few numpy operations, giving the
loss, pykan's sparsity regulariser and their gradient over the flat parameter vector in float64.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from emp_kan.kan.fast.train import _Forward, _Parameters

__all__ = ["CompiledObjective", "LayerBuffers", "as_float32", "float64_array", "loss_and_slope"]


class LayerBuffers:
    """One layer's per-point arrays on the training rows (see :mod:`emp_kan.kan.fast.kernels`)."""

    def __init__(self, n_in: int, n_out: int, n_points: int, k: int) -> None:
        self.values = np.zeros((n_in, n_points, k + 1))
        self.slopes = np.zeros((n_in, n_points, k + 1))
        self.start = np.zeros((n_in, n_points), dtype=np.int64)
        self.silu = np.zeros((n_in, n_points))
        self.silu_slope = np.zeros((n_in, n_points))
        self.out = np.zeros((n_out, n_points))
        self.edges = np.zeros((n_in, n_out, n_points))
        self.edge_mean = np.zeros((n_in, n_out))
        self.variance = np.zeros((n_in, n_out))
        self.grad_base = np.zeros((n_in, n_out))
        self.grad_input = np.zeros((n_in, n_points))


class CompiledObjective:
    """:meth:`_Forward.objective_and_gradient` over one grid: the model's fixed tensors, the
    knots and the first layer's basis on the training rows (its inputs are the data) are read
    once, in float64.

    Each evaluation runs, per layer, the compiled basis (hidden layers only), forward and
    backward loops, and around them a few small numpy operations: the masks and scales folded
    into the weights, the node affines, and (``lamb > 0``) the edges' standard deviations, which
    give pykan's ``acts_scale_spline`` and the regulariser's gradient through them.
    """

    def __init__(self, forward: _Forward, params: _Parameters) -> None:
        # Imported at the first objective: loading the compiled kernels (numba) costs about a
        # second that a model trained by pykan's own fit, or not trained, never pays.
        from emp_kan.kan.fast import kernels

        self.kernels = kernels
        model = forward.model
        self.n_layers = len(forward.layers)
        self.slices: dict[tuple[str, int], tuple[int, int, tuple[int, ...]]] = {}
        position = 0
        for name, i, param in params.entries:
            self.slices[name, i] = (position, position + param.numel(), tuple(param.shape))
            position += param.numel()
        self.n_params = position
        self.fixed: dict[tuple[str, int], np.ndarray] = {}
        for i, layer in enumerate(forward.layers):
            for name in ("coef", "scale_base", "scale_sp"):
                if (name, i) not in self.slices:
                    self.fixed[name, i] = float64_array(getattr(layer, name))
        self.affines: list[list[tuple[str, str]]] = []
        for i in range(self.n_layers):
            pairs = []
            for scale_name, bias_name in (
                ("subnode_scale", "subnode_bias"),
                ("node_scale", "node_bias"),
            ):
                if (scale_name, i) in forward.identity and (bias_name, i) in forward.identity:
                    continue
                pairs.append((scale_name, bias_name))
                for name in (scale_name, bias_name):
                    if (name, i) not in self.slices:
                        self.fixed[name, i] = float64_array(getattr(model, name)[i])
            self.affines.append(pairs)
        self.masks = [float64_array(layer.mask) for layer in forward.layers]
        self.knots = [float64_array(layer.grid) for layer in forward.layers]
        self.ks = [int(layer.k) for layer in forward.layers]
        self.padded = [
            kernels.padded_knots(knots, k) for knots, k in zip(self.knots, self.ks, strict=True)
        ]
        self.x0 = float64_array(forward.x0t)
        n_points = self.x0.shape[1]
        self.n_points = n_points
        self.buffers = [
            LayerBuffers(layer.in_dim, layer.out_dim, n_points, int(layer.k))
            for layer in forward.layers
        ]
        first = self.buffers[0]
        kernels.layer_basis(
            self.x0,
            *self.padded[0],
            self.ks[0],
            first.values,
            first.slopes,
            first.start,
            first.silu,
            first.silu_slope,
        )
        self.x0_std = self.x0.std(axis=1, ddof=1) if n_points > 1 else np.zeros(len(self.x0))
        self._labels: torch.Tensor | None = None
        self._target = np.zeros(0)

    def _get(self, flat: np.ndarray, name: str, i: int) -> np.ndarray:
        if (name, i) in self.slices:
            begin, end, shape = self.slices[name, i]
            return flat[begin:end].reshape(shape)
        return self.fixed[name, i]

    def __call__(
        self, flat: np.ndarray, labels: torch.Tensor, loss: str, lamb: float
    ) -> tuple[float, float, np.ndarray]:
        kernels = self.kernels
        with_stats = lamb > 0
        tape = []
        xt = self.x0
        for i in range(self.n_layers):
            entry, xt = self._layer(i, flat, xt, with_stats)
            tape.append(entry)
        if labels is not self._labels:
            self._labels, self._target = labels, float64_array(labels)
        value, grad_out = loss_and_slope(xt.T, self._target, loss, self.n_points)
        objective = value
        grad_scales: list[np.ndarray | None] = [None] * self.n_layers
        if with_stats:
            for i, entry in enumerate(tape):
                grad = np.empty_like(entry["scales"])
                objective += lamb * kernels.regulariser(entry["scales"], 1.0, 2.0, grad)
                grad_scales[i] = lamb * grad
        gradient = np.zeros(self.n_params)
        for i in reversed(range(self.n_layers)):
            grad_out = self._layer_backward(i, tape[i], grad_out, grad_scales[i], gradient)
        # The model holds float32: a loss beyond float32's range is infinite there, and
        # fast_fit's divergence guard must see it so.
        return as_float32(value), as_float32(objective), gradient

    def _layer(
        self, i: int, flat: np.ndarray, xt: np.ndarray, with_stats: bool
    ) -> tuple[dict[str, Any], np.ndarray]:
        """Layer ``i`` forward from its inputs ``xt (w_i, n)``: what its backward pass reads
        (with the regulariser's statistics when ``with_stats``) and its outputs ``(w_i+1, n)``."""
        kernels = self.kernels
        buf = self.buffers[i]
        if i > 0:
            kernels.layer_basis(
                xt,
                *self.padded[i],
                self.ks[i],
                buf.values,
                buf.slopes,
                buf.start,
                buf.silu,
                buf.silu_slope,
            )
        mask = self.masks[i]
        coef = self._get(flat, "coef", i)
        scale_sp = self._get(flat, "scale_sp", i)
        scale_base = self._get(flat, "scale_base", i)
        base = mask * scale_base
        spline = (mask * scale_sp)[:, :, None] * coef
        kernels.layer_forward(
            buf.values, buf.start, buf.silu, base, spline, buf.out, buf.edges, with_stats
        )
        entry: dict[str, Any] = {
            "x": xt,
            "base": base,
            "spline": spline,
            "coef": coef,
            "scale_sp": scale_sp,
        }
        if with_stats:
            kernels.edge_moments(buf.edges, buf.edge_mean, buf.variance)
            x_std = self.x0_std if i == 0 else xt.std(axis=1, ddof=1)
            # A dead edge has variance 0, where sqrt's slope is infinite; pykan's masked
            # edges contribute nothing, so clamp before the root.
            std = np.sqrt(np.maximum(buf.variance, 1e-30))
            entry.update(
                std=std,
                x_std=x_std,
                range=x_std + 0.1,
                scales=np.ascontiguousarray((std / (x_std + 0.1)[:, None]).T),
            )
        out = buf.out
        entry["affines"] = []
        for scale_name, bias_name in self.affines[i]:
            scale = self._get(flat, scale_name, i)
            entry["affines"].append((scale_name, bias_name, scale, out))
            out = scale[:, None] * out + self._get(flat, bias_name, i)[:, None]
        return entry, out

    def _put(self, gradient: np.ndarray, name: str, i: int, value: np.ndarray) -> None:
        if (name, i) in self.slices:
            begin, end, _ = self.slices[name, i]
            gradient[begin:end] = value.reshape(-1)

    def _layer_backward(
        self,
        i: int,
        entry: dict,
        grad_out: np.ndarray,
        grad_scales: np.ndarray | None,
        gradient: np.ndarray,
    ) -> np.ndarray:
        """Layer ``i``'s parameter gradients into ``gradient`` from its output's gradient
        ``(out, B)`` (and its scales' ``(out, in)``); returns its input's gradient."""
        for scale_name, bias_name, scale, before in reversed(entry["affines"]):
            self._put(gradient, scale_name, i, (grad_out * before).sum(axis=1))
            self._put(gradient, bias_name, i, grad_out.sum(axis=1))
            grad_out = scale[:, None] * grad_out
        buf = self.buffers[i]
        n = max(self.n_points - 1, 1)
        with_edges = grad_scales is not None
        if with_edges:
            g = grad_scales.T  # (in, out)
            std, input_range = entry["std"], entry["range"]
            edge_factor = np.where(buf.variance > 1e-30, g / (n * std * input_range[:, None]), 0.0)
            edge_mean = buf.edge_mean
        else:
            edge_factor = edge_mean = buf.grad_base  # unread
        grad_spline = np.zeros_like(entry["spline"])
        self.kernels.layer_backward(
            buf.values,
            buf.slopes,
            buf.start,
            buf.silu,
            buf.silu_slope,
            entry["base"],
            entry["spline"],
            np.ascontiguousarray(grad_out),
            edge_factor,
            buf.edges,
            edge_mean,
            with_edges,
            i > 0,
            buf.grad_base,
            grad_spline,
            buf.grad_input,
        )
        mask = self.masks[i]
        self._put(gradient, "scale_base", i, buf.grad_base * mask)
        self._put(gradient, "coef", i, grad_spline * (mask * entry["scale_sp"])[:, :, None])
        self._put(gradient, "scale_sp", i, (grad_spline * entry["coef"]).sum(axis=2) * mask)
        if i == 0:
            return grad_out  # the data: nothing further back
        grad_in = buf.grad_input.copy()
        if with_edges:
            x, x_std = entry["x"], entry["x_std"]
            grad_range = -(g * std).sum(axis=1) / input_range**2
            factor = np.where(x_std > 0, grad_range / (n * np.where(x_std > 0, x_std, 1.0)), 0.0)
            grad_in += factor[:, None] * (x - x.mean(axis=1, keepdims=True))
        return grad_in


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def as_float32(value: float) -> float:
    """``value``, infinite beyond float32's range (without numpy's warning)."""
    if not abs(value) <= _FLOAT32_MAX:  # NaN too
        return value if math.isnan(value) else math.copysign(math.inf, value)
    return value


def float64_array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().numpy(), dtype=np.float64)


def loss_and_slope(
    prediction: np.ndarray, target: np.ndarray, loss: str, n: int
) -> tuple[float, np.ndarray]:
    """The data loss of ``prediction (n, w_L)`` against ``target`` and its slope with respect
    to the outputs, ``(w_L, n)``: mean squared error, or mean cross-entropy of logits."""
    if loss == "cross_entropy":
        shifted = prediction - prediction.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        value = float(-(target * (shifted - log_norm)).sum(axis=1).mean())
        probabilities = np.exp(shifted - log_norm)
        return value, (probabilities * target.sum(axis=1, keepdims=True) - target).T / n
    residual = prediction - target
    return float(np.mean(residual * residual)), (2.0 / residual.size) * residual.T
