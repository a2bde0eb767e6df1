"""Effective Model Pruning (EMP): scores in, masks out.

The maths of Wang et al., "Effective Model Pruning" (arXiv 2509.25606), free of any model
framework. Every function accepts a numpy array, a torch tensor (on any device) or a nested
sequence of numbers, of any shape; scores are flattened in row-major (C) order.

Given scores ``s_1..s_N`` the weights on the simplex are ``w_i = |s_i| / sum_j |s_j|``, the
effective number is ``N_eff = 1 / sum_i w_i**2`` (``1 <= N_eff <= N``), and EMP keeps exactly
the ``nu = floor(beta * N_eff)`` (clamped to ``[1, N]``) largest components.

Conventions shared by every function here:

* ``signed="abs"`` (default) ranks by ``|s|``; ``signed="shift"`` ranks by ``s - min(s)``, for
  signed scores whose sign carries meaning.
* All-zero scores (after the transform) cannot be ranked: they count as uniform, so
  ``N_eff = N`` and everything is kept.
* ``floor`` forgives a relative rounding error of 1e-9, so that uniform scores, whose computed
  ``N_eff`` may land a hair below ``N``, keep all ``N`` components.
* Ties at the cut are broken by position: the entry that comes first in row-major order is kept.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from emp_kan._runtime.checks import Interval

__all__ = [
    "BETA",
    "EMPSelection",
    "effective_number",
    "emp_mask",
    "emp_select",
    "mass_lower_bound",
    "preserved_mass",
    "retention_count",
]

SignedMode = Literal["abs", "shift"]
_FLOOR_RTOL = 1e-9


@dataclass(frozen=True)
class EMPSelection:
    """What one EMP step decided.

    Attributes
    ----------
    mask : numpy.ndarray or torch.Tensor
        Boolean, the shape and kind of the scores: True for the kept components.
    n_alive : int
        Components that took part (the alive ones).
    n_eff : float
        Effective number of the alive scores, in ``[1, n_alive]``.
    kept : int
        ``nu``, the number of components kept.
    preserved_mass : float
        ``s_eff``: the share of the alive score mass that the kept components hold.
    mass_bound : float or None
        The tight lower bound on ``s_eff`` for this ``N_eff``; None when ``beta < 1``, where
        fewer than ``floor(N_eff)`` components are kept and no such bound holds.
    """

    mask: Any
    n_alive: int
    n_eff: float
    kept: int
    preserved_mass: float
    mass_bound: float | None


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _tolerant_floor(x: float) -> int:
    return math.floor(x + _FLOOR_RTOL * max(1.0, abs(x)))


def _check_signed(signed: str) -> None:
    if signed not in ("abs", "shift"):
        raise ValueError(f"signed must be 'abs' or 'shift', got {signed!r}")


# beta's one constraint: EMPPruner, DiscoverConfig and the functions here all check it.
BETA = Interval(float, 0, closed="neither")


def _check_beta(beta: Any) -> float:
    return BETA.check("beta", beta)


def _flat_scores(scores: Any) -> tuple[Any, tuple[int, ...], bool]:
    """Return (1-D float array of the same kind, original shape, is_torch)."""
    if _is_torch(scores):
        t = scores.detach()
        if not t.is_floating_point():
            t = t.double()
        return t.reshape(-1), tuple(t.shape), True
    if isinstance(scores, (str, bytes)):
        raise ValueError("scores must be numbers, got a string")
    try:
        a = np.asarray(scores)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"scores must form a rectangular array of numbers: {exc}") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"scores must be numbers, got an array of dtype {a.dtype}")
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    return a.reshape(-1), a.shape, False


def _bool_flat(mask: Any, shape: tuple[int, ...], torch_kind: bool, device: Any, name: str):
    """A mask of the scores' shape as a flat bool array of the scores' kind."""
    if _is_torch(mask):
        m = mask.detach()
        m_shape = tuple(m.shape)
        m = m.to(device) if torch_kind else m.cpu().numpy()
    else:
        m = np.asarray(mask)
        m_shape = m.shape
    if m_shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {m_shape} but scores have shape {tuple(shape)}; "
            "pass a boolean mask of the same shape as the scores"
        )
    if torch_kind:
        import torch

        flat = (m if _is_torch(m) else torch.as_tensor(m, device=device)).reshape(-1)
        if flat.dtype != torch.bool:
            if bool(((flat != 0) & (flat != 1)).any()):
                raise ValueError(f"{name} must be boolean (or 0/1); it has other values")
            flat = flat != 0
        return flat
    flat = m.reshape(-1)
    if flat.dtype != bool:
        if flat.dtype == object or np.any((flat != 0) & (flat != 1)):
            raise ValueError(f"{name} must be boolean (or 0/1); it has other values")
        flat = flat != 0
    return flat


def _alive_index(alive: Any, shape: tuple[int, ...], torch_kind: bool, device: Any):
    """Flat indices of the alive entries, or None when every entry is alive."""
    if alive is None:
        return None
    flat = _bool_flat(alive, shape, torch_kind, device, "alive")
    if torch_kind:
        import torch

        idx = torch.nonzero(flat).reshape(-1)
        n_alive = int(idx.numel())
    else:
        idx = np.flatnonzero(flat)
        n_alive = int(idx.size)
    if n_alive == 0:
        raise ValueError("alive marks no entry as alive: there is nothing left to rank")
    if n_alive == flat.shape[0]:
        return None
    return idx


@dataclass
class _Prepared:
    """Flat non-negative weights of the alive entries, with their float64 sums."""

    base: Any  # 1-D, n entries, the input's kind and float dtype
    idx: Any  # flat indices of the alive entries in the input, or None for all
    shape: tuple[int, ...]
    size: int
    torch_kind: bool
    n: int
    total: float  # sum of base, in float64
    base64: Any  # base as float64 (the same object when base already is)

    def n_eff(self) -> float:
        if self.total == 0.0:
            return float(self.n)
        b = self.base64
        sq = float(b.dot(b)) if self.torch_kind else float(np.dot(b, b))
        ratio = self.total * self.total / sq if sq > 0.0 else math.inf
        if not math.isfinite(ratio) or sq < sys.float_info.min:
            # Squares of tiny (or huge) scores under- or overflowed, or are subnormal and kept
            # only a few digits (two scores of 1.8e-158 gave N_eff 1.99999999): rescale by the
            # largest.
            scaled = b / b.max()
            ratio = float(scaled.sum()) ** 2 / float((scaled * scaled).sum())
        # (sum s)^2 / sum s^2 is 1 / sum w^2 with one rounding step fewer.
        return min(float(self.n), max(1.0, ratio))

    def mass_of(self, keep_alive: Any) -> float:
        """Share of the alive mass in ``keep_alive`` (a bool array over the alive entries)."""
        if self.total == 0.0:
            kept = int(keep_alive.sum()) if self.torch_kind else int(np.count_nonzero(keep_alive))
            return kept / self.n
        return float(self.base64[keep_alive].sum()) / self.total


def _raise_non_finite(values: Any, torch_kind: bool) -> None:
    if torch_kind:
        import torch

        n_nan = int(torch.isnan(values).sum())
        n_inf = int(torch.isinf(values).sum())
    else:
        n_nan = int(np.isnan(values).sum())
        n_inf = int(np.isinf(values).sum())
    if n_nan or n_inf:
        raise ValueError(
            f"scores contain {n_nan} NaN and {n_inf} infinite entries; "
            "replace or drop them (for example with numpy.nan_to_num) before pruning"
        )


def _prepare(scores: Any, alive: Any, signed: str) -> _Prepared:
    _check_signed(signed)
    flat, shape, torch_kind = _flat_scores(scores)
    size = int(flat.numel()) if torch_kind else int(flat.size)
    if size == 0:
        raise ValueError("scores is empty: EMP needs at least one score")
    device = flat.device if torch_kind else None
    idx = _alive_index(alive, shape, torch_kind, device)
    values = flat if idx is None else flat[idx]
    if signed == "shift":
        _raise_non_finite(values, torch_kind)
        base = values - values.min()
    else:
        base = values.abs() if torch_kind else np.abs(values)
    if torch_kind:
        import torch

        base64 = base if base.dtype == torch.float64 else base.double()
        n = int(base.numel())
    else:
        base64 = base if base.dtype == np.float64 else base.astype(np.float64)
        n = int(base.size)
    total = float(base64.sum())
    if not math.isfinite(total):
        # One pass over the sum instead of a separate finiteness pass over every entry.
        _raise_non_finite(values, torch_kind)
        base64 = base64 / base64.max()  # finite entries whose sum overflowed
        total = float(base64.sum())
    return _Prepared(base, idx, tuple(shape), size, torch_kind, n, total, base64)


def _count(n_eff: float, beta: float, n: int) -> int:
    return min(n, max(1, _tolerant_floor(beta * n_eff)))


def effective_number(scores: Any, *, alive: Any = None, signed: SignedMode = "abs") -> float:
    """Effective number of components, ``N_eff = 1 / sum_i w_i**2``.

    Parameters
    ----------
    scores : array_like or torch.Tensor, any shape (N entries)
        One importance score per component.
    alive : array_like or torch.Tensor of bool, same shape as ``scores``, optional
        Only the alive entries are counted.
    signed : {"abs", "shift"}
        Rank by ``|s|`` or by ``s - min(s)``.

    Returns
    -------
    float
        In ``[1, N]``; ``N`` for uniform or all-zero scores, ``1`` for a one-hot vector.

    Examples
    --------
    >>> effective_number([1.0, 1.0, 1.0, 1.0])
    4.0
    >>> effective_number([0.0, 3.0, 0.0])
    1.0
    """
    return _prepare(scores, alive, signed).n_eff()


def retention_count(
    scores: Any, beta: float = 1.0, *, alive: Any = None, signed: SignedMode = "abs"
) -> int:
    """How many components EMP keeps: ``nu = floor(beta * N_eff)``, clamped to ``[1, N]``.

    Parameters
    ----------
    scores : array_like or torch.Tensor, any shape (N entries)
    beta : float
        Positive scale on ``N_eff``; 1 is the paper's recommendation.
    alive : bool mask of the scores' shape, optional
        ``N`` and ``N_eff`` are taken over the alive entries only.
    signed : {"abs", "shift"}

    Examples
    --------
    >>> retention_count([4.0, 1.0, 1.0, 1.0, 1.0])
    3
    """
    beta = _check_beta(beta)
    prep = _prepare(scores, alive, signed)
    return _count(prep.n_eff(), beta, prep.n)


def _top_k_flat(base: Any, k: int, torch_kind: bool) -> Any:
    """Bool mask of the k largest entries of a flat array; ties go to the lower index."""
    n = int(base.numel()) if torch_kind else int(base.size)
    if torch_kind:
        import torch

        if k >= n:
            return torch.ones(n, dtype=torch.bool, device=base.device)
        # kthvalue is the k-th smallest; the k-th largest is the (n-k+1)-th smallest.
        cut = torch.kthvalue(base, n - k + 1).values
        keep = base > cut
        need = k - int(keep.sum())
        if need > 0:
            ties = torch.nonzero(base == cut).reshape(-1)[:need]
            keep[ties] = True
        return keep
    if k >= n:
        return np.ones(n, dtype=bool)
    cut = np.partition(base, n - k)[n - k]
    keep = base > cut
    need = k - int(np.count_nonzero(keep))
    if need > 0:
        keep[np.flatnonzero(base == cut)[:need]] = True
    return keep


def emp_select(
    scores: Any, beta: float = 1.0, *, alive: Any = None, signed: SignedMode = "abs"
) -> EMPSelection:
    """Run one EMP step and report everything it decided.

    Parameters
    ----------
    scores : array_like or torch.Tensor, any shape (N entries)
        One importance score per component.
    beta : float
        Positive scale on ``N_eff``.
    alive : bool mask of the scores' shape, optional
        Entries already removed (False) take no part: ``N``, the weights and ``N_eff`` are
        computed over the alive entries, and dead entries stay False in the result.
    signed : {"abs", "shift"}

    Returns
    -------
    EMPSelection
        ``mask`` has the scores' shape and kind (numpy bool array, or torch bool tensor on the
        scores' device) and holds exactly ``kept`` True entries.

    Raises
    ------
    ValueError
        Empty scores, NaN or infinite alive scores, a beta that is not a positive finite
        number, an ``alive`` mask of the wrong shape or with no alive entry.
    """
    beta = _check_beta(beta)
    prep = _prepare(scores, alive, signed)
    n_eff = prep.n_eff()
    k = _count(n_eff, beta, prep.n)
    keep_alive = _top_k_flat(prep.base, k, prep.torch_kind)
    if prep.idx is None:
        mask = keep_alive
    elif prep.torch_kind:
        import torch

        mask = torch.zeros(prep.size, dtype=torch.bool, device=prep.base.device)
        mask[prep.idx[keep_alive]] = True
    else:
        mask = np.zeros(prep.size, dtype=bool)
        mask[prep.idx[keep_alive]] = True
    return EMPSelection(
        mask=mask.reshape(prep.shape),
        n_alive=prep.n,
        n_eff=n_eff,
        kept=k,
        preserved_mass=prep.mass_of(keep_alive),
        mass_bound=mass_lower_bound(n_eff, prep.n) if beta >= 1.0 else None,
    )


def emp_mask(
    scores: Any, beta: float = 1.0, *, alive: Any = None, signed: SignedMode = "abs"
) -> Any:
    """Boolean keep-mask of the top ``nu = floor(beta * N_eff)`` components.

    See :func:`emp_select` for the parameters; this returns only its ``mask``.

    Examples
    --------
    >>> emp_mask([0.1, 5.0, 0.2, 4.0]).tolist()
    [False, True, False, True]
    >>> emp_mask([1.0, 1.0, 1.0], beta=0.5).tolist()  # ties: the first one wins
    [True, False, False]
    """
    return emp_select(scores, beta, alive=alive, signed=signed).mask


def preserved_mass(
    scores: Any, keep: Any, *, alive: Any = None, signed: SignedMode = "abs"
) -> float:
    """``s_eff``: the share of the (alive) normalised score mass held by ``keep``.

    Parameters
    ----------
    scores : array_like or torch.Tensor, any shape
    keep : bool mask of the scores' shape
        Kept components; kept entries that are not alive are ignored.
    alive : bool mask of the scores' shape, optional
    signed : {"abs", "shift"}

    Returns
    -------
    float
        In ``[0, 1]``; all-zero scores count as uniform.

    Examples
    --------
    >>> preserved_mass([3.0, 1.0], [True, False])
    0.75
    """
    prep = _prepare(scores, alive, signed)
    device = prep.base.device if prep.torch_kind else None
    keep_flat = _bool_flat(keep, prep.shape, prep.torch_kind, device, "keep")
    return prep.mass_of(keep_flat if prep.idx is None else keep_flat[prep.idx])


def mass_lower_bound(n_eff: float, n: int) -> float:
    """Tight lower bound on the mass that the top ``nu = floor(n_eff)`` components preserve.

    * ``nu >= n``: 1.0 (everything is kept).
    * ``nu = 1`` (``1 <= n_eff < 2``): ``1/2 + 1/2 * sqrt((2 - n_eff) / n_eff)``, the two-spike
      bound. The paper's Theorem 4.2 is false here: ``w = (0.51, 0.49, 0, ...)`` with
      ``N = 10`` has ``s_eff = 0.51`` where the theorem promises 0.70.
    * ``2 <= nu < n``: Theorem 4.2,
      ``nu/N + ((N - nu)/N) * sqrt((N - nu - 1) / ((nu + 1) * (N - 1)))``.

    The bound is for ``beta = 1``; it does not hold for ``beta < 1``.

    Parameters
    ----------
    n_eff : float
        Effective number, ``1 <= n_eff <= n``.
    n : int
        Number of components, ``n >= 1``.

    Examples
    --------
    >>> round(mass_lower_bound(10.5, 16), 6)
    0.690279
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive whole number, got {n!r}")
    n_eff = float(n_eff)
    slack = _FLOOR_RTOL * n
    if not math.isfinite(n_eff) or n_eff < 1.0 - slack or n_eff > n + slack:
        raise ValueError(f"n_eff must lie in [1, n] = [1, {n}], got {n_eff!r}")
    n_eff = min(max(n_eff, 1.0), float(n))
    nu = _tolerant_floor(n_eff)
    if nu >= n:
        return 1.0
    if nu == 1:
        return 0.5 + 0.5 * math.sqrt(max(0.0, 2.0 - n_eff) / n_eff)
    return nu / n + ((n - nu) / n) * math.sqrt((n - nu - 1) / ((nu + 1) * (n - 1)))
