"""Work shared inside one run: a deterministic computation asked twice is done once.

``discover`` prunes the same trained models with two methods. Where both reach the same pruned
model they retrain it identically (same state, same rows, same settings, one thread), and the
product search reads only the data, so both methods compute the same candidates. A
:class:`Memo` made for the run and passed down keeps such results under a digest of everything
they depend on and hands them out again; a function given no memo computes (there is no global
cache and no memory held between calls).

The results are the ones a fresh computation gives: only computations that are deterministic in
their key are memoised here (the fast training path on one thread, which draws no random
numbers; the product search's numpy fits).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["Memo", "Pending", "digest", "recall"]

T = TypeVar("T")


class Memo:
    """Deterministic results kept for one run, passed explicitly to the work that may repeat.

    Use it as a context manager: leaving the block stops the other processes still computing
    a pending result (see :class:`Pending`). ``hits`` counts the results handed out again, per
    kind of work (for logs and tests).
    """

    def __init__(self) -> None:
        self._store: dict[tuple[str, str], Any] = {}
        self.hits: dict[str, int] = {}

    def __enter__(self) -> Memo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recall(
        self,
        kind: str,
        key: str,
        compute: Callable[[], T],
        keep: Callable[[T], Any] = lambda v: v,
        restore: Callable[[Any], T] = lambda v: v,
    ) -> T:
        """The result kept for ``(kind, key)``, or ``compute()``, kept from now on.

        ``keep`` turns a fresh result into what is stored (a copy, when the caller may mutate
        it) and ``restore`` a stored one into what is returned.
        """
        if (kind, key) not in self._store:
            value = compute()
            self._store[kind, key] = keep(value)
            return value
        self.hits[kind] = self.hits.get(kind, 0) + 1
        value = self._store[kind, key]
        if isinstance(value, Pending):
            fresh = value.resolve(compute)
            self._store[kind, key] = keep(fresh)
            return fresh
        return restore(value)

    def remember(self, kind: str, key: str, value: Any) -> None:
        """Keep ``value`` as the result for ``(kind, key)`` (computed elsewhere, e.g. in a
        forked child, or a :class:`Pending` one)."""
        self._store[kind, key] = value

    def _pending(self) -> list[Pending]:
        return [value for value in self._store.values() if isinstance(value, Pending)]

    def share_pending_with_a_fork(self) -> None:
        """:meth:`Pending.share_with_a_fork` for every pending result: call before forking a
        process that may ask for one."""
        for pending in self._pending():
            pending.share_with_a_fork()

    def settle_pending(self) -> None:
        """:meth:`Pending.settle` for every pending result: call before waiting for a fork
        that may ask for one."""
        for pending in self._pending():
            pending.settle()

    def close(self) -> None:
        """Stop every other process still computing a pending result."""
        for pending in self._pending():
            pending.close()


class Pending:
    """A result another process is computing (a forked child), kept by :meth:`Memo.remember` and
    fetched by :func:`recall` the first time it is asked for, so that this process works on
    meanwhile.

    A process forked after :meth:`Memo.share_pending_with_a_fork` gets the result from this one,
    through a pipe, as soon as this one has it; if this one settles without it (see
    :meth:`Memo.settle_pending`), the fork computes it itself.

    Parameters
    ----------
    fetch : callable
        Waits for the result; returns None where the other process has none (it failed).
    close : callable
        Stops the other process if it still runs.
    """

    def __init__(self, fetch: Callable[[], Any], close: Callable[[], None]) -> None:
        self._fetch = fetch
        self._close: Callable[[], None] | None = close
        self._owner = os.getpid()
        self._pipes: list[tuple[Any, Any]] = []  # (reader, writer), one per later fork

    def share_with_a_fork(self) -> None:
        """Call before forking a process that may ask for the result."""
        self._pipes.append(multiprocessing.get_context("fork").Pipe(duplex=False))

    def resolve(self, compute: Callable[[], Any]) -> Any:
        """The result: fetched (or, where that fails, computed) and passed on to the forks, or
        in a fork, what the process that forked it passed on (or computed)."""
        if os.getpid() != self._owner:
            if not self._pipes:  # forked without a pipe: nothing will be passed on
                return compute()
            reader, writer = self._pipes[-1]  # the pipe made for this fork
            writer.close()  # else a parent that closes its end would leave this one waiting
            try:
                # Our own parent's bytes: nothing from outside is unpickled here.
                return pickle.loads(reader.recv_bytes())
            except EOFError:  # settled without the result
                return compute()
            finally:
                reader.close()
        value = self._take()
        if value is None:
            value = compute()
        self._pass_on(value)
        return value

    def settle(self) -> None:
        """In the process that made it: pass the result on to the forks if the other process
        has it, else let them compute it. Nothing here asks for it any more."""
        if os.getpid() == self._owner and self._pipes:
            value = self._take()
            if value is None:
                self.close()
            else:
                self._pass_on(value)

    def _take(self) -> Any:
        try:
            return self._fetch()
        except Exception:  # noqa: BLE001 - the other process failed: compute here instead
            return None
        finally:
            self._stop()

    def _pass_on(self, value: Any) -> None:
        payload = pickle.dumps(value)
        for reader, writer in self._pipes:
            reader.close()  # so that a fork gone without reading cannot hold the pipe open
            try:
                writer.send_bytes(payload)
            except OSError:  # the fork ended without asking
                pass
            finally:
                writer.close()
        self._pipes = []

    def _stop(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def close(self) -> None:
        """Stop the other process if it still runs, and close the forks' pipes."""
        if os.getpid() != self._owner:
            return
        self._stop()
        for reader, writer in self._pipes:
            reader.close()
            writer.close()
        self._pipes = []


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


def recall(
    memo: Memo | None,
    kind: str,
    key: str,
    compute: Callable[[], T],
    keep: Callable[[T], Any] = lambda v: v,
    restore: Callable[[Any], T] = lambda v: v,
) -> T:
    """``memo.recall(...)``, or without a memo ``compute()``."""
    if memo is None:
        return compute()
    return memo.recall(kind, key, compute, keep, restore)
