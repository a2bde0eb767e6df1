"""pykan's optimizers over one flat float64 parameter vector, in numpy.

Constructing any ``torch.optim.Optimizer`` imports ``torch._dynamo`` (about 1 s on this
machine, once per process), and pykan's LBFGS gathers and scatters its parameter list on every
evaluation. The fast training path keeps every trainable number in one flat vector and its
objective (compiled loops, float64) returns the gradient itself, so both optimizers are written
here over that vector, in numpy float64: on vectors of a few hundred numbers a numpy operation
costs a fraction of a torch one, and a step rounds less.

* :class:`FlatLBFGS` is pykan's ``kan.LBFGS.step`` (torch's L-BFGS with a ``tolerance_ys``
  guard on the curvature pairs) step for step, with pykan's strong-Wolfe line search ported
  line for line (:func:`_strong_wolfe`); trajectories match pykan's to rounding (a test holds
  three Rosenbrock steps equal). Its direction (the two-loop recursion over the curvature
  history) is one compiled loop (numba): in numpy it was a few dozen calls on short vectors
  per iteration;
* :class:`FlatAdam` is ``torch.optim.Adam`` with its defaults (betas 0.9 / 0.999, eps 1e-8).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from emp_kan._runtime.jit import compiled

__all__ = ["Evaluate", "FlatAdam", "FlatLBFGS"]


Evaluate = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""The objective at a point ``(n,)``: ``x -> (value, gradient (n,))``; it must not keep ``x``."""


class FlatLBFGS:
    """pykan's ``LBFGS(history_size=10, line_search_fn="strong_wolfe")`` on a flat vector.

    Parameters
    ----------
    flat : ndarray, ``(n,)``, float64
        Updated in place.
    lr : float
    history_size, max_iter : int
        pykan's ``fit`` uses 10 and 20 (``max_eval = max_iter * 5 // 4``).
    tolerance_grad, tolerance_change, tolerance_ys : float
        pykan's ``fit`` sets all three to 1e-32: every step makes its ``max_iter`` iterations.
    """

    def __init__(
        self,
        flat: np.ndarray,
        lr: float = 1.0,
        history_size: int = 10,
        max_iter: int = 20,
        tolerance_grad: float = 1e-32,
        tolerance_change: float = 1e-32,
        tolerance_ys: float = 1e-32,
    ) -> None:
        self.flat = flat
        self.lr = lr
        self.history_size = history_size
        self.max_iter = max_iter
        self.max_eval = max_iter * 5 // 4
        self.tolerance_grad = tolerance_grad
        self.tolerance_change = tolerance_change
        self.tolerance_ys = tolerance_ys
        self.n_iter = 0
        self.d: np.ndarray | None = None
        self.t: float = lr
        self.dirs: np.ndarray | None = None  # curvature pairs, (history_size, n), oldest first
        self.stps: np.ndarray | None = None
        self.ro: np.ndarray | None = None
        self.count = 0  # pairs held
        self._al: np.ndarray | None = None  # the recursion's scratch, (history_size,)
        self.h_diag = 1.0
        self.prev_flat_grad: np.ndarray | None = None

    def step(self, evaluate: Evaluate) -> float:
        """One pykan LBFGS step (up to ``max_iter`` iterations); returns the first value."""
        loss, flat_grad = evaluate(self.flat)
        first_loss = loss
        if np.max(np.abs(flat_grad)) <= self.tolerance_grad:
            return first_loss
        current_evals = 1
        n_iter = 0
        while n_iter < self.max_iter:
            n_iter += 1
            self.n_iter += 1
            if self.n_iter == 1:
                d = -flat_grad
                self.count = 0
                self.h_diag = 1.0
            else:
                d = self._direction(flat_grad)
            self.prev_flat_grad = flat_grad.copy()
            if self.n_iter == 1:
                t = min(1.0, 1.0 / float(np.sum(np.abs(flat_grad)))) * self.lr
            else:
                t = self.lr
            self.d, self.t = d, t
            prev_loss = loss
            gtd = float(flat_grad @ d)
            if gtd > -self.tolerance_change:
                break
            start = self.flat.copy()

            def directional(
                step: float, direction: np.ndarray = d, start: np.ndarray = start
            ) -> tuple[float, np.ndarray]:
                return evaluate(start + step * direction)

            loss, flat_grad, t, ls_evals = _strong_wolfe(directional, t, d, loss, flat_grad, gtd)
            self.flat += t * d
            self.t = t
            opt_cond = np.max(np.abs(flat_grad)) <= self.tolerance_grad
            current_evals += ls_evals
            if n_iter == self.max_iter or current_evals >= self.max_eval or opt_cond:
                break
            if np.max(np.abs(d * t)) <= self.tolerance_change:
                break
            if abs(loss - prev_loss) < self.tolerance_change:
                break
        return first_loss

    def _direction(self, flat_grad: np.ndarray) -> np.ndarray:
        """The two-loop recursion after storing the newest curvature pair."""
        if self.dirs is None:
            self.dirs = np.zeros((self.history_size, len(flat_grad)))
            self.stps = np.zeros((self.history_size, len(flat_grad)))
            self.ro = np.zeros(self.history_size)
            self._al = np.zeros(self.history_size)
        state = np.array([self.count, self.h_diag, self.tolerance_ys])
        direction = np.empty(len(flat_grad))
        _lbfgs_direction(
            flat_grad,
            self.prev_flat_grad,
            self.d,
            self.t,
            self.dirs,
            self.stps,
            self.ro,
            state,
            self._al,
            direction,
        )
        self.count, self.h_diag = int(state[0]), float(state[1])
        return direction


@compiled(nogil=True)
def _lbfgs_direction(
    flat_grad, prev_flat_grad, d, t, dirs, stps, ro, state, al, q
):  # pragma: no cover
    """torch's L-BFGS direction into ``q (n,)``: store the newest curvature pair (``y``,
    ``s``) in the history ``dirs``, ``stps`` ``(history, n)`` and ``ro`` ``(history,)`` (the
    oldest ``count`` rows first, the oldest dropped when full), then the two-loop recursion.
    ``state`` is ``[count, h_diag, tolerance_ys]`` (the first two updated); ``al`` is scratch.

    Each elementwise operation rounds as numpy's does, in its order; the dot products are
    plain sums. Written as scalar loops into given arrays: numba's array expressions, slice
    assignments, allocations and BLAS binding would add up to 2 s to every process's compile.
    """
    n = flat_grad.shape[0]
    count = int(state[0])
    ys = 0.0
    yy = 0.0
    for j in range(n):
        y = flat_grad[j] - prev_flat_grad[j]
        s = d[j] * t
        ys += y * s
        yy += y * y
        q[j] = s  # scratch until the recursion starts
    if ys > state[2]:
        if count == dirs.shape[0]:
            for i in range(count - 1):
                for j in range(n):
                    dirs[i, j] = dirs[i + 1, j]
                    stps[i, j] = stps[i + 1, j]
                ro[i] = ro[i + 1]
            count -= 1
        for j in range(n):
            dirs[count, j] = flat_grad[j] - prev_flat_grad[j]
            stps[count, j] = q[j]
        ro[count] = 1.0 / ys
        count += 1
        state[1] = ys / yy
    state[0] = count
    h_diag = state[1]
    for j in range(n):
        q[j] = -flat_grad[j]
    for i in range(count - 1, -1, -1):
        along = 0.0
        for j in range(n):
            along += stps[i, j] * q[j]
        al[i] = along * ro[i]
        for j in range(n):
            q[j] = q[j] - al[i] * dirs[i, j]
    for j in range(n):
        q[j] = q[j] * h_diag
    for i in range(count):
        along = 0.0
        for j in range(n):
            along += dirs[i, j] * q[j]
        step = al[i] - along * ro[i]
        for j in range(n):
            q[j] = q[j] + step * stps[i, j]
    return 0


def _cubic_interpolate(
    x1: float,
    f1: float,
    g1: float,
    x2: float,
    f2: float,
    g2: float,
    bounds: tuple[float, float] | None = None,
) -> float:
    """pykan's (torch's) ``_cubic_interpolate``: the minimiser of the cubic through two points
    with their values and slopes, clipped to ``bounds``."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    middle = (xmin_bound + xmax_bound) / 2.0
    if x1 == x2:  # no interval to interpolate on
        return middle
    if x1 > x2:  # the formula is symmetric in the two points: write it for x1 < x2 only
        x1, f1, g1, x2, f2, g2 = x2, f2, g2, x1, f1, g1
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return middle
    d2 = math.sqrt(d2_square)
    denominator = g2 - g1 + 2 * d2
    # torch divides tensors and gets inf or nan where the cubic degenerates (equal slopes and
    # no curvature); in floats that is a ZeroDivisionError: bisect instead
    if denominator == 0:
        return middle
    min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / denominator)
    if not math.isfinite(min_pos):
        return middle
    return min(max(min_pos, xmin_bound), xmax_bound)


def _strong_wolfe(
    obj_func: Callable[[float], tuple[float, np.ndarray]],
    t: float,
    d: np.ndarray,
    f: float,
    g: np.ndarray,
    gtd: float,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, np.ndarray, float, int]:
    """pykan's (torch's) ``_strong_wolfe`` line search, line for line, on numpy vectors.

    ``obj_func(t)`` is the objective and gradient at ``x + t * d``. Returns the accepted
    point's value and gradient, its step ``t`` and the number of evaluations.
    """
    d_norm = float(np.max(np.abs(d)))
    brackets, done, ls_iter, ls_func_evals = _bracket(obj_func, t, d, f, g, gtd, c1, c2, max_ls)
    if done or ls_iter >= max_ls:
        bracket, bracket_f, bracket_g, _ = brackets
        low_pos = 0 if len(bracket) == 1 or bracket_f[0] <= bracket_f[-1] else 1
        return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals
    return _zoom(
        obj_func,
        d,
        f,
        gtd,
        brackets,
        (c1, c2, tolerance_change, max_ls, d_norm),
        ls_iter,
        ls_func_evals,
    )


def _bracket(
    obj_func: Callable[[float], tuple[float, np.ndarray]],
    t: float,
    d: np.ndarray,
    f: float,
    g: np.ndarray,
    gtd: float,
    c1: float,
    c2: float,
    max_ls: int,
) -> tuple[tuple[list, list, list, list], bool, int, int]:
    """The first phase of :func:`_strong_wolfe`: steps grow until an interval brackets a point
    that satisfies the strong Wolfe conditions (or one is found: ``done``). Returns the
    bracket's steps, values, gradients and directional derivatives, ``done``, the iterations
    and the evaluations so far."""
    f_new, g_new = obj_func(t)
    ls_func_evals = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            brackets = ([t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new])
            return brackets, False, ls_iter, ls_func_evals
        if abs(gtd_new) <= -c2 * gtd:
            return ([t], [f_new], [g_new], []), True, ls_iter, ls_func_evals
        if gtd_new >= 0:
            brackets = ([t_prev, t], [f_prev, f_new], [g_prev, g_new], [gtd_prev, gtd_new])
            return brackets, False, ls_iter, ls_func_evals
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(
            t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step)
        )
        t_prev = tmp
        f_prev = f_new
        g_prev = g_new
        gtd_prev = gtd_new
        f_new, g_new = obj_func(t)
        ls_func_evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
    return ([0.0, t], [f, f_new], [g, g_new], []), False, ls_iter, ls_func_evals


def _zoom(
    obj_func: Callable[[float], tuple[float, np.ndarray]],
    d: np.ndarray,
    f: float,
    gtd: float,
    brackets: tuple[list, list, list, list],
    limits: tuple[float, float, float, int, float],
    ls_iter: int,
    ls_func_evals: int,
) -> tuple[float, np.ndarray, float, int]:
    """The second phase of :func:`_strong_wolfe`: the bracket shrinks by cubic interpolation
    until a point satisfies the strong Wolfe conditions, the budget is spent or the bracket is
    too small; the best point's value, gradient, step and the evaluations."""
    c1, c2, tolerance_change, max_ls, d_norm = limits
    bracket, bracket_f, bracket_g, bracket_gtd = brackets
    done = False
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(
            bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]
        )
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(t)
        ls_func_evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos] = t
            bracket_f[high_pos] = f_new
            bracket_g[high_pos] = g_new
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos] = bracket[low_pos]
                bracket_f[high_pos] = bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos] = t
            bracket_f[low_pos] = f_new
            bracket_g[low_pos] = g_new
            bracket_gtd[low_pos] = gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


class FlatAdam:
    """``torch.optim.Adam(lr=lr)`` (betas 0.9 / 0.999, eps 1e-8) on a flat vector."""

    def __init__(
        self,
        flat: np.ndarray,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.flat, self.lr, self.betas, self.eps = flat, lr, betas, eps
        self.exp_avg = np.zeros_like(flat)
        self.exp_avg_sq = np.zeros_like(flat)
        self.n_step = 0

    def step(self, evaluate: Evaluate) -> float:
        """One Adam update from the gradient at the current value; returns that value."""
        loss, grad = evaluate(self.flat)
        self.n_step += 1
        beta1, beta2 = self.betas
        self.exp_avg += (grad - self.exp_avg) * (1 - beta1)
        self.exp_avg_sq = self.exp_avg_sq * beta2 + (1 - beta2) * grad * grad
        bias_correction1 = 1 - beta1**self.n_step
        bias_correction2_sqrt = (1 - beta2**self.n_step) ** 0.5
        denom = np.sqrt(self.exp_avg_sq) / bias_correction2_sqrt + self.eps
        self.flat -= (self.lr / bias_correction1) * self.exp_avg / denom
        return loss
