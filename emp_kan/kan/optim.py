"""pykan's optimizers over one flat parameter vector, without ``torch.optim``.

Constructing any ``torch.optim.Optimizer`` imports ``torch._dynamo`` (about 1 s on this
machine, once per process), and pykan's LBFGS gathers and scatters its parameter list on every
evaluation. The fast training path keeps every trainable number in one flat vector and its
objective returns the gradient itself, so both optimizers are written here over that vector:

* :class:`FlatLBFGS` is pykan's ``kan.LBFGS.step`` (torch's L-BFGS with a ``tolerance_ys``
  guard on the curvature pairs) step for step, with pykan's own strong-Wolfe line search; only
  the two-loop recursion runs in float64 numpy (faster on vectors this short, and it rounds
  less), so trajectories match pykan's to rounding (a test holds three Rosenbrock steps equal);
* :class:`FlatAdam` is ``torch.optim.Adam`` with its defaults (betas 0.9 / 0.999, eps 1e-8).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["Evaluate", "FlatAdam", "FlatLBFGS"]

Evaluate = Callable[[], tuple[float, torch.Tensor]]
"""The objective at the vector's current value: ``() -> (value, gradient (n,))``."""


class FlatLBFGS:
    """pykan's ``LBFGS(history_size=10, line_search_fn="strong_wolfe")`` on a flat vector.

    Parameters
    ----------
    flat : torch.Tensor, ``(n,)``
        Updated in place.
    lr : float
    history_size, max_iter : int
        pykan's ``fit`` uses 10 and 20 (``max_eval = max_iter * 5 // 4``).
    tolerance_grad, tolerance_change, tolerance_ys : float
        pykan's ``fit`` sets all three to 1e-32: every step makes its ``max_iter`` iterations.
    """

    def __init__(self, flat: torch.Tensor, lr: float = 1.0, history_size: int = 10,
                 max_iter: int = 20, tolerance_grad: float = 1e-32,
                 tolerance_change: float = 1e-32, tolerance_ys: float = 1e-32) -> None:  # fmt: skip
        self.flat = flat
        self.lr = lr
        self.history_size = history_size
        self.max_iter = max_iter
        self.max_eval = max_iter * 5 // 4
        self.tolerance_grad = tolerance_grad
        self.tolerance_change = tolerance_change
        self.tolerance_ys = tolerance_ys
        self.n_iter = 0
        self.d: torch.Tensor | None = None
        self.t: float | torch.Tensor = lr
        self.old_dirs: list[np.ndarray] = []  # float64 curvature pairs
        self.old_stps: list[np.ndarray] = []
        self.ro: list[float] = []
        self.h_diag = 1.0
        self.prev_flat_grad: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, evaluate: Evaluate) -> float:
        """One pykan LBFGS step (up to ``max_iter`` iterations); returns the first value."""
        from kan.LBFGS import _strong_wolfe  # pykan's line search, unchanged

        loss, flat_grad = evaluate()
        first_loss = loss
        if flat_grad.abs().max() <= self.tolerance_grad:
            return first_loss
        current_evals = 1
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            self.n_iter += 1
            if self.n_iter == 1:
                d = flat_grad.neg()
                self.old_dirs, self.old_stps, self.ro = [], [], []
                self.h_diag = 1.0
            else:
                d = self._direction(flat_grad)
            if self.prev_flat_grad is None:
                self.prev_flat_grad = flat_grad.clone()
            else:
                self.prev_flat_grad.copy_(flat_grad)
            if self.n_iter == 1:
                t = min(1.0, 1.0 / float(flat_grad.abs().sum())) * self.lr
            else:
                t = self.lr
            self.d, self.t = d, t
            prev_loss = loss
            gtd = flat_grad.dot(d)
            if gtd > -self.tolerance_change:
                break
            x_init = [self.flat.clone()]

            def directional(x: list[torch.Tensor], step: float, direction: torch.Tensor):
                self.flat.add_(direction, alpha=step)
                value, grad = evaluate()
                self.flat.copy_(x[0])
                return value, grad

            loss, flat_grad, t, ls_evals = _strong_wolfe(directional, x_init, t, d, loss,
                                                         flat_grad, gtd)  # fmt: skip
            self.flat.add_(d, alpha=t)
            self.t = t
            opt_cond = flat_grad.abs().max() <= self.tolerance_grad
            current_evals += ls_evals
            if n_iter == self.max_iter or current_evals >= self.max_eval or opt_cond:
                break
            if d.mul(t).abs().max() <= self.tolerance_change:
                break
            if abs(loss - prev_loss) < self.tolerance_change:
                break
        return first_loss

    def _direction(self, flat_grad: torch.Tensor) -> torch.Tensor:
        """The two-loop recursion after storing the newest curvature pair.

        The history is a few dozen vectors of a few hundred numbers: numpy in float64 does the
        recursion's ~50 small operations in a fifth of torch's time (and rounds less).
        """
        g = flat_grad.numpy().astype(np.float64)
        y = g - self.prev_flat_grad.numpy()
        s = self.d.numpy().astype(np.float64) * float(self.t)
        ys = float(y @ s)
        if ys > self.tolerance_ys:
            if len(self.old_dirs) == self.history_size:
                self.old_dirs.pop(0)
                self.old_stps.pop(0)
                self.ro.pop(0)
            self.old_dirs.append(y)
            self.old_stps.append(s)
            self.ro.append(1.0 / ys)
            self.h_diag = ys / float(y @ y)
        al = [0.0] * len(self.old_dirs)
        q = -g
        for i in range(len(self.old_dirs) - 1, -1, -1):
            al[i] = float(self.old_stps[i] @ q) * self.ro[i]
            q -= al[i] * self.old_dirs[i]
        r = q * self.h_diag
        for i in range(len(self.old_dirs)):
            be_i = float(self.old_dirs[i] @ r) * self.ro[i]
            r += (al[i] - be_i) * self.old_stps[i]
        return torch.from_numpy(r.astype(np.float32))


class FlatAdam:
    """``torch.optim.Adam(lr=lr)`` (betas 0.9 / 0.999, eps 1e-8) on a flat vector."""

    def __init__(self, flat: torch.Tensor, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:  # fmt: skip
        self.flat, self.lr, self.betas, self.eps = flat, lr, betas, eps
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self.n_step = 0

    @torch.no_grad()
    def step(self, evaluate: Evaluate) -> float:
        """One Adam update from the gradient at the current value; returns that value."""
        loss, grad = evaluate()
        self.n_step += 1
        beta1, beta2 = self.betas
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
        bias_correction1 = 1 - beta1**self.n_step
        bias_correction2_sqrt = (1 - beta2**self.n_step) ** 0.5
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        self.flat.addcdiv_(self.exp_avg, denom, value=-self.lr / bias_correction1)
        return loss
