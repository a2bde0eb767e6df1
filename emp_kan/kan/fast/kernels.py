"""Compiled loops of one KAN layer for the fast training path: the local B-spline basis, the
forward and the backward, in float64.

An order-k B-spline basis is nonzero on only ``k + 1`` of its ``G + k`` functions at any point:
the functions ``j - k .. j`` of the knot interval ``[t_j, t_{j+1})`` that holds it. Torch
evaluates all of them with a dozen whole-array kernels per layer, each costing more in dispatch
than in arithmetic on models this small. Here one loop over the points runs de Boor's triangle
for the live functions only, and the layer's forward and backward read only those. Near either
end of the grid some of the triangle's functions fall outside the basis: they are computed on
knots padded at both ends (finite, never read), and no function of the basis reads one of
them.

Conventions (a layer with ``n_in`` inputs, ``n_out`` outputs, ``m`` knots per input,
``n_fun = m - 1 - k`` basis functions, ``B`` points):

* ``values``, ``slopes``: ``(n_in, B, k + 1)``, the live functions' values and derivatives;
  function ``start[i, b] + r`` for ``r = 0 .. k`` (indices outside ``0 .. n_fun - 1`` are 0);
* ``base``: ``(n_in, n_out)``, ``mask * scale_base``; ``spline``: ``(n_in, n_out, n_fun)``,
  ``mask * scale_sp * coef``: edge ``(i, o)`` outputs ``base[i, o] * silu(x_i) +
  spline[i, o] . B(x_i)``, pykan's ``mask * (scale_base * silu(x) + scale_sp * spline(x))``.

pykan's order-0 step is ``t_j <= x < t_{j+1}``: a point outside ``[t_0, t_{m-1})`` has no live
function. A knot interval of length 0 has factor 0, which is what pykan's ``nan_to_num`` makes
of its 0/0 there.
"""

from __future__ import annotations

import math

import numpy as np

from emp_kan._runtime.jit import compiled

# Compiling these loops takes about 2 s per process: their machine code is kept where
# emp_kan._runtime.jit allows (written at install time by python -m emp_kan.app.precompile).

__all__ = [
    "edge_moments",
    "layer_backward",
    "layer_basis",
    "layer_forward",
    "padded_knots",
    "regulariser",
]


def padded_knots(knots: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The knots ``(n_in, m)`` with each end repeated ``k`` more times, ``(n_in, m + 2k)``, and
    ``inverse[i, p, j] = 1 / (t_{j+p} - t_j)`` on them, 0 where the two knots coincide,
    ``(n_in, k + 1, m + 2k)``: the basis loop then multiplies only, and the functions past
    either end of the basis (never read) come out finite."""
    padded = np.concatenate(
        [np.repeat(knots[:, :1], k, axis=1), knots, np.repeat(knots[:, -1:], k, axis=1)], axis=1
    )
    n_in, m = padded.shape
    inverse = np.zeros((n_in, k + 1, m))
    for p in range(1, k + 1):
        width = padded[:, p:] - padded[:, :-p]
        safe = np.where(width == 0, 1.0, width)
        inverse[:, p, : m - p] = np.where(width == 0, 0.0, 1.0 / safe)
    return np.ascontiguousarray(padded), inverse


def layer_basis(xt, padded, inverse, k, values, slopes, start, silu, silu_slope) -> None:
    """Fill ``values``, ``slopes`` ``(n_in, B, k + 1)``, ``start`` ``(n_in, B)``, ``silu`` and
    ``silu_slope`` ``(n_in, B)`` for the inputs ``xt`` ``(n_in, B)`` (``padded`` knots and
    their ``inverse`` from :func:`padded_knots`).

    de Boor's triangle in pykan's form ``B_{i,p} = (x - t_i) / (t_{i+p} - t_i) B_{i,p-1} +
    (t_{i+p+1} - x) / (t_{i+p+1} - t_{i+1}) B_{i+1,p-1}``: each order p-1 value feeds its own
    function's left term and its left neighbour's right term, which share one inverse. Two
    compiled loops, one written out for k = 3 (pykan's default) and one for any k: a process
    compiles only the one it uses.
    """
    basis = _basis_cubic if k == 3 else _basis_any_order
    basis(xt, padded, inverse, k, values, slopes, start, silu, silu_slope)


@compiled(nogil=True, inline="always")
def _silu(x):  # pragma: no cover
    """``silu(x)`` and its slope."""
    sig = 1.0 / (1.0 + math.exp(-x))
    return x * sig, sig * (1.0 + x * (1.0 - sig))


@compiled(nogil=True, inline="always")
def _interval(t, x, k, m):  # pragma: no cover
    """The padded index ``j + k`` of the knot starting the interval ``[t_j, t_{j+1})`` that
    holds ``x`` (inside the grid): ``j`` counts the inner knots <= x."""
    j = 0
    for q in range(k + 1, k + m - 1):
        j += t[q] <= x
    return j + k


# _basis_cubic and _basis_any_order repeat their per-point prologue on purpose. Shared as one
# driver taking the triangle as a numba function argument, it was bitwise the same but 3%
# slower per call and compiled 0.2 s longer in every process; shared as an inlined helper
# writing the arrays, 4.4x slower. The split exists to save compile time.
@compiled(nogil=True)
def _basis_cubic(
    xt, padded, inverse, k, values, slopes, start, silu, silu_slope
):  # pragma: no cover
    """:func:`layer_basis` for k = 3."""
    n_in, n_points = xt.shape
    m = padded.shape[1] - 2 * k  # the knots proper start at index k
    for i in range(n_in):
        t = padded[i]
        inv = inverse[i]
        first = t[k]
        last = t[k + m - 1]
        for b in range(n_points):
            x = xt[i, b]
            silu[i, b], silu_slope[i, b] = _silu(x)
            if not (x >= first and x < last):  # outside the grid: no live function
                start[i, b] = 0
                for r in range(k + 1):
                    values[i, b, r] = 0.0
                    slopes[i, b, r] = 0.0
                continue
            jp = _interval(t, x, k, m)
            start[i, b] = jp - 2 * k
            _cubic(x, t, inv, jp, values[i, b], slopes[i, b])


@compiled(nogil=True)
def _basis_any_order(
    xt, padded, inverse, k, values, slopes, start, silu, silu_slope
):  # pragma: no cover
    """:func:`layer_basis` for any k."""
    n_in, n_points = xt.shape
    m = padded.shape[1] - 2 * k  # the knots proper start at index k
    level = np.zeros(k + 1)
    below = np.zeros(k + 1)  # the order k-1 values, for the slopes
    for i in range(n_in):
        t = padded[i]
        inv = inverse[i]
        first = t[k]
        last = t[k + m - 1]
        for b in range(n_points):
            x = xt[i, b]
            silu[i, b], silu_slope[i, b] = _silu(x)
            if not (x >= first and x < last):  # outside the grid: no live function
                start[i, b] = 0
                for r in range(k + 1):
                    values[i, b, r] = 0.0
                    slopes[i, b, r] = 0.0
                continue
            jp = _interval(t, x, k, m)
            start[i, b] = jp - 2 * k
            level[0] = 1.0
            for p in range(1, k + 1):
                if p == k:
                    for r in range(k):
                        below[r] = level[r]
                saved = 0.0
                for r in range(p):
                    idx = jp - p + 1 + r  # level[r] is B_{idx, p-1}
                    temp = level[r] * inv[p, idx]
                    level[r] = saved + (t[idx + p] - x) * temp
                    saved = (x - t[idx]) * temp
                level[p] = saved
            for r in range(k + 1):
                values[i, b, r] = level[r]
            if k == 0:
                for r in range(k + 1):
                    slopes[i, b, r] = 0.0
                continue
            # B'_{idx,k} = k (B_{idx,k-1} / (t_{idx+k} - t_idx) - B_{idx+1,k-1} / (...)).
            for r in range(k + 1):
                idx = jp - k + r
                slope = 0.0
                if r >= 1:
                    slope += below[r - 1] * inv[k, idx]
                if r <= k - 1:
                    slope -= below[r] * inv[k, idx + 1]
                slopes[i, b, r] = k * slope


@compiled(nogil=True, inline="always")
def _cubic(x, t, inv, jp, values, slopes):  # pragma: no cover
    """:func:`layer_basis`'s triangle written out for k = 3 (pykan's default), the same
    operations in the same order: with the loops unrolled the values stay in registers, and
    the basis costs half as much."""
    a = inv[1, jp]
    l0 = (t[jp + 1] - x) * a
    l1 = (x - t[jp]) * a
    temp = l0 * inv[2, jp - 1]
    n0 = (t[jp + 1] - x) * temp
    saved = (x - t[jp - 1]) * temp
    temp = l1 * inv[2, jp]
    n1 = saved + (t[jp + 2] - x) * temp
    n2 = (x - t[jp]) * temp
    temp = n0 * inv[3, jp - 2]
    values[0] = (t[jp + 1] - x) * temp
    saved = (x - t[jp - 2]) * temp
    temp = n1 * inv[3, jp - 1]
    values[1] = saved + (t[jp + 2] - x) * temp
    saved = (x - t[jp - 1]) * temp
    temp = n2 * inv[3, jp]
    values[2] = saved + (t[jp + 3] - x) * temp
    values[3] = (x - t[jp]) * temp
    slopes[0] = 3 * (0.0 - n0 * inv[3, jp - 2])
    slopes[1] = 3 * (n0 * inv[3, jp - 2] - n1 * inv[3, jp - 1])
    slopes[2] = 3 * (n1 * inv[3, jp - 1] - n2 * inv[3, jp])
    slopes[3] = 3 * (n2 * inv[3, jp])


@compiled(nogil=True)
def layer_forward(values, start, silu, base, spline, out, edges, keep_edges):  # pragma: no cover
    """The layer's outputs into ``out`` ``(n_out, B)``; with ``keep_edges`` each edge's output
    into ``edges`` ``(n_in, n_out, B)``."""
    n_in, n_points, width = values.shape
    n_out = base.shape[1]
    n_fun = spline.shape[2]
    out[:] = 0.0
    for i in range(n_in):
        for b in range(n_points):
            s = start[i, b]
            for o in range(n_out):
                edge = base[i, o] * silu[i, b]
                for r in range(width):
                    f = s + r
                    if f >= 0 and f < n_fun:
                        edge += spline[i, o, f] * values[i, b, r]
                out[o, b] += edge
                if keep_edges:
                    edges[i, o, b] = edge


@compiled(nogil=True)
def layer_backward(
    values,
    slopes,
    start,
    silu,
    silu_slope,
    base,
    spline,
    grad_out,
    edge_factor,
    edges,
    edge_mean,
    with_edges,
    with_input,
    grad_base,
    grad_spline,
    grad_input,
):  # pragma: no cover
    """Gradients of ``base`` ``(n_in, n_out)`` and ``spline`` ``(n_in, n_out, n_fun)`` into
    ``grad_base`` and ``grad_spline``, and (``with_input``) of the inputs into ``grad_input``
    ``(n_in, B)``, from the outputs' gradient ``grad_out`` ``(n_out, B)``.

    With ``with_edges``, each edge's output also has the gradient ``edge_factor[i, o] *
    (edges[i, o, b] - edge_mean[i, o])``: that of a function of its standard deviation (the
    regulariser's)."""
    n_in, n_points, width = values.shape
    n_out = base.shape[1]
    n_fun = spline.shape[2]
    grad_base[:] = 0.0
    grad_spline[:] = 0.0
    if with_input:
        grad_input[:] = 0.0
    for i in range(n_in):
        for b in range(n_points):
            s = start[i, b]
            for o in range(n_out):
                g = grad_out[o, b]
                if with_edges:
                    g += edge_factor[i, o] * (edges[i, o, b] - edge_mean[i, o])
                grad_base[i, o] += g * silu[i, b]
                slope = base[i, o] * silu_slope[i, b]
                for r in range(width):
                    f = s + r
                    if f >= 0 and f < n_fun:
                        grad_spline[i, o, f] += g * values[i, b, r]
                        slope += spline[i, o, f] * slopes[i, b, r]
                if with_input:
                    grad_input[i, b] += g * slope


@compiled(nogil=True)
def edge_moments(edges, mean, variance):  # pragma: no cover
    """Each edge's mean and unbiased variance over the points, ``(n_in, n_out)``, from
    ``edges`` ``(n_in, n_out, B)``."""
    n_in, n_out, n_points = edges.shape
    for i in range(n_in):
        for o in range(n_out):
            total = 0.0
            for b in range(n_points):
                total += edges[i, o, b]
            mu = total / n_points
            square = 0.0
            for b in range(n_points):
                d = edges[i, o, b] - mu
                square += d * d
            mean[i, o] = mu
            variance[i, o] = square / max(n_points - 1, 1)


@compiled(nogil=True)
def regulariser(scales, lamb_l1, lamb_entropy, grad):  # pragma: no cover
    """pykan's ``reg("edge_forward_spline_n", lamb_l1, lamb_entropy, 0, 0)`` share of one
    layer's ``scales`` ``(out, in)``; its gradient into ``grad`` ``(out, in)``.

    With ``p = vec / (sum + 1)`` along rows (columns) and ``phi(p) = p log2(p + 1e-4)``, the
    entropy ``-mean sum phi(p)`` has slope ``-(phi'(p) - sum phi'(p) p) / ((sum + 1) n)`` in
    ``vec``, where ``n`` is the number of rows (columns) the mean runs over.
    """
    n_rows, n_cols = scales.shape
    log2 = math.log(2.0)
    total = 0.0
    for r in range(n_rows):
        for c in range(n_cols):
            total += lamb_l1 * scales[r, c]
            grad[r, c] = lamb_l1
    # Rows, then columns: the two loops are twins on purpose. One helper called on the scales
    # and on their transpose compiles for two array layouts (0.14 s more per process, and
    # every process compiles where bytecode may not be written); one helper with a flag, 0.2 s.
    # Rows: each row's entries over its sum + 1; the mean runs over the rows.
    for r in range(n_rows):
        norm = 1.0
        for c in range(n_cols):
            norm += scales[r, c]
        entropy = 0.0
        weighted = 0.0
        for c in range(n_cols):
            p = scales[r, c] / norm
            log_p = math.log(p + 1e-4) / log2
            entropy += p * log_p
            weighted += (log_p + p / ((p + 1e-4) * log2)) * p
        total -= lamb_entropy * entropy / n_rows
        for c in range(n_cols):
            p = scales[r, c] / norm
            slope = math.log(p + 1e-4) / log2 + p / ((p + 1e-4) * log2)
            grad[r, c] -= lamb_entropy / n_rows * (slope - weighted) / norm
    for c in range(n_cols):
        norm = 1.0
        for r in range(n_rows):
            norm += scales[r, c]
        entropy = 0.0
        weighted = 0.0
        for r in range(n_rows):
            p = scales[r, c] / norm
            log_p = math.log(p + 1e-4) / log2
            entropy += p * log_p
            weighted += (log_p + p / ((p + 1e-4) * log2)) * p
        total -= lamb_entropy * entropy / n_cols
        for r in range(n_rows):
            p = scales[r, c] / norm
            slope = math.log(p + 1e-4) / log2 + p / ((p + 1e-4) * log2)
            grad[r, c] -= lamb_entropy / n_cols * (slope - weighted) / norm
    return total
