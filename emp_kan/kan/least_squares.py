"""The last layer of a KAN refitted in one linear least-squares solve (its output is linear in
that layer's spline coefficients and output biases once everything before is fixed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from emp_kan.kan import adapter
from emp_kan.kan._pykan import import_pykan

__all__ = ["solve_last_layer_splines"]


def solve_last_layer_splines(model: Any, x: torch.Tensor, y: torch.Tensor) -> bool:
    """Refit the last layer's spline coefficients and output biases by linear least squares.

    The model's output is linear in the last layer's B-spline coefficients and node biases once
    everything before them is fixed, so the best fit is one least-squares solve instead of an
    iterative retraining. Only the change is solved for, with minimum norm, so coefficients of
    basis functions no sample reaches keep their values. Masked and symbolic edges are untouched.

    Parameters
    ----------
    model : kan.MultKAN
        Changed in place (unless the solve is not finite).
    x : torch.Tensor, ``(n, inputs)``
    y : torch.Tensor, ``(n, outputs)``

    Returns
    -------
    bool
        Whether the model was updated.
    """
    import_pykan()
    from kan.spline import B_batch  # pykan's own basis: the same numbers its forward uses

    last = model.depth - 1
    layer = model.act_fun[last]
    with torch.no_grad():
        pred = adapter.forward_pass(model, x).double()
        x_in = model.acts[last].double()  # (n, in): the last layer's inputs
        residual = y.double() - pred  # (n, out)
        bases = B_batch(x_in, layer.grid.double(), k=layer.k)  # (n, in, G + k)
        sub_s, _, node_s, _ = adapter.node_affines(model, last)
        mask = layer.mask.double()  # (in, out)
        scale_sp = layer.scale_sp.double()
        n = x.shape[0]
        updates = []
        for out in range(residual.shape[1]):
            factor = node_s[out] * sub_s[out] * mask[:, out] * scale_sp[:, out]  # (in,)
            design = torch.cat(
                [(bases * factor[None, :, None]).reshape(n, -1), torch.ones(n, 1).double()], dim=1
            )
            # numpy's LAPACK, not torch's MKL: MKL's result moves with the arrays' memory
            # alignment, and the same seed stopped giving the same formula.
            solution = np.linalg.lstsq(design.numpy(), residual[:, out].numpy(), rcond=None)[0]
            updates.append(torch.from_numpy(solution))
        if not all(torch.isfinite(u).all() for u in updates):
            return False
        for out, delta in enumerate(updates):
            coef_delta = delta[:-1].reshape(layer.coef.shape[0], layer.coef.shape[2])
            layer.coef[:, out, :] += coef_delta.to(layer.coef.dtype)
            model.node_bias[last][out] += delta[-1].to(model.node_bias[last].dtype)
    return True
