"""Work shared inside one run: a deterministic computation asked twice is done once.

``discover`` prunes the same trained models with two methods. Where both reach the same pruned
model they retrain it identically (same state, same rows, same settings, one thread), and the
product search reads only the data, so both methods compute the same candidates. Inside
:func:`shared_work` such results are kept under a digest of everything they depend on and handed
out again; outside it nothing is kept (no global cache, no memory held between calls).

The results are the ones a fresh computation gives: only computations that are deterministic in
their key are memoised here (the fast training path on one thread, which draws no random
numbers; the product search's numpy fits).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["digest", "recall", "remember", "shared_work", "sharing"]

T = TypeVar("T")

_STORE: ContextVar[dict[tuple[str, str], Any] | None] = ContextVar("emp_kan_shared_work",
                                                                    default=None)  # fmt: skip
_HITS: ContextVar[dict[str, int] | None] = ContextVar("emp_kan_shared_hits", default=None)


@contextmanager
def shared_work() -> Iterator[dict[str, int]]:
    """Keep deterministic results for the duration of the block.

    Yields a dict that counts the hits per kind of work (for logs and tests). Nested blocks
    share the outer block's store.
    """
    if _STORE.get() is not None:
        yield _HITS.get()  # type: ignore[misc]
        return
    store_token = _STORE.set({})
    hits: dict[str, int] = {}
    hits_token = _HITS.set(hits)
    try:
        yield hits
    finally:
        _STORE.reset(store_token)
        _HITS.reset(hits_token)


def _feed(h: Any, part: Any) -> None:
    if isinstance(part, torch.Tensor):
        part = part.detach().cpu().contiguous().numpy()
    if isinstance(part, np.ndarray):
        h.update(f"array{part.dtype.str}{part.shape}".encode())
        h.update(np.ascontiguousarray(part).tobytes())
    elif isinstance(part, (list, tuple)):
        h.update(f"seq{len(part)}(".encode())
        for item in part:
            _feed(h, item)
        h.update(b")")
    elif isinstance(part, dict):
        h.update(f"map{len(part)}(".encode())
        for key in sorted(part, key=repr):
            _feed(h, key)
            _feed(h, part[key])
        h.update(b")")
    elif part is None or isinstance(part, (bool, int, float, str, bytes)):
        h.update(f"{type(part).__name__}:{part!r};".encode())
    else:
        raise TypeError(f"cannot digest a {type(part).__name__}")


def digest(*parts: Any) -> str:
    """A digest of tensors, arrays, numbers, strings and nested lists/tuples/dicts of them:
    equal digests mean equal dtypes, shapes and bytes."""
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        _feed(h, part)
    return h.hexdigest()


def recall(kind: str, key: str, compute: Callable[[], T], keep: Callable[[T], Any] = lambda v: v,
           restore: Callable[[Any], T] = lambda v: v) -> T:  # fmt: skip
    """``compute()``, or inside :func:`shared_work` the result kept for ``(kind, key)``.

    ``keep`` turns a fresh result into what is stored (a copy, when the caller may mutate it)
    and ``restore`` a stored one into what is returned.
    """
    store = _STORE.get()
    if store is None:
        return compute()
    if (kind, key) in store:
        hits = _HITS.get()
        if hits is not None:
            hits[kind] = hits.get(kind, 0) + 1
        return restore(store[kind, key])
    value = compute()
    store[kind, key] = keep(value)
    return value


def remember(kind: str, key: str, value: Any) -> None:
    """Inside :func:`shared_work`, keep ``value`` as the result for ``(kind, key)`` (computed
    elsewhere, e.g. in a forked child); outside it, nothing."""
    store = _STORE.get()
    if store is not None:
        store[kind, key] = value


def sharing() -> bool:
    """Whether a :func:`shared_work` block is open (so that work done ahead will be used)."""
    return _STORE.get() is not None
