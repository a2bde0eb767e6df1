"""Run a function in a forked child process and take its result back.

``discover``'s two methods (and its routes' training) are independent, deterministic and
CPU-bound: on a machine with two CPUs one can run in a child while this process runs the other.
A forked child starts with this process's memory (the trained models, the data, the imports), so
nothing is sent to it; its result comes back pickled. Fork only on Linux: macOS's system
libraries are not fork-safe, and elsewhere there is no fork.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import sys
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["Child", "usable_workers"]


def usable_workers(workers: int) -> int:
    """``workers``, but no more than the CPUs this process may run on, and 1 where this module
    does not fork or this process may not have children."""
    forks = "fork" in multiprocessing.get_all_start_methods()
    # A daemonic process (a Dask or multiprocessing pool worker) may not have children.
    if not (sys.platform.startswith("linux") and forks) or multiprocessing.current_process().daemon:
        return 1
    return max(1, min(workers, len(os.sched_getaffinity(0))))


class _Collect(logging.Handler):
    """Keeps the child's log records (message formatted, so that they pickle)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None
        record.exc_info = record.exc_text = None
        self.records.append(record)


def _child_main(connection: Any, function: Callable[..., Any], args: tuple) -> None:
    # The child writes nothing itself: a lock another thread of the parent held at the fork
    # stays held here (a notebook's output thread, tqdm's monitor), so its log records and
    # warnings go back with the result and the parent emits them.
    logger = logging.getLogger("emp_kan")
    collect = _Collect()
    logger.handlers, logger.propagate = [collect], False
    with warnings.catch_warnings(record=True) as caught:
        try:
            from tqdm import tqdm
            from tqdm.std import TqdmDefaultWriteLock

            tqdm.set_lock(TqdmDefaultWriteLock())  # a disabled bar still takes tqdm's lock
            result = ("done", function(*args))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
            result = ("failed", exc)
    said = (collect.records, [(str(w.message), w.category, w.filename, w.lineno) for w in caught])
    # Plain pickle, in band: multiprocessing's own pickler passes tensors as shared memory
    # that vanishes with this process.
    try:
        payload = pickle.dumps((*result, said))
    except Exception as exc:  # noqa: BLE001 - an exception (or result) pickle cannot carry
        cause = result[1] if result[0] == "failed" else exc  # name the failure, not the pickle's
        payload = pickle.dumps(("failed", RuntimeError(f"{type(cause).__name__}: {cause}"), said))
    try:
        connection.send_bytes(payload)
    finally:
        connection.close()
        os._exit(0)  # no atexit handlers, no flushing of buffers the parent owns


class Child:
    """``function(*args)`` computing in a forked child from the moment this is made.

    Parameters
    ----------
    function : callable
        Its result must pickle (pykan models do not: return their state instead).
    args : tuple
    what : str
        Names the work in errors, e.g. "the threshold run".
    """

    def __init__(self, function: Callable[..., Any], args: tuple, what: str) -> None:
        context = multiprocessing.get_context("fork")
        self.what = what
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_child_main, args=(sender, function, args), daemon=True
        )
        self._process.start()
        sender.close()

    def result(self) -> Any:
        """Wait for the child and return what ``function`` returned, or raise what it raised."""
        try:
            # Our own child's bytes: nothing from outside is unpickled here.
            status, payload, (records, caught) = pickle.loads(self._receiver.recv_bytes())
        except EOFError:
            self._process.join()
            raise RuntimeError(
                f"{self.what}'s worker process ended without a result (exit code "
                f"{self._process.exitcode}); run with workers=1 (--workers 1) "
                "to see why"
            ) from None
        finally:
            self.close()
        for record in records:  # in the order the child said them
            logging.getLogger(record.name).handle(record)
        for message, category, filename, lineno in caught:
            warnings.warn_explicit(message, category, filename, lineno)
        if status == "failed":
            raise payload
        return payload

    def close(self) -> None:
        """Stop the child if it still runs, and release it."""
        self._receiver.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
