"""Guards a library entry point runs under: the caller's global generators left as they were,
and torch and BLAS on one thread (deterministic sums)."""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["one_thread", "preserved_global_rng", "single_threaded"]


@contextlib.contextmanager
def preserved_global_rng(seed: int | None = None) -> Iterator[None]:
    """Run a block with the global ``random``, numpy and torch generators saved and restored.

    Parameters
    ----------
    seed : int, optional
        Seed all three generators on entry, so the block is reproducible.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - pykan uses the legacy global generator
    torch_state = torch.random.get_rng_state()
    try:
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed % 2**32)  # noqa: NPY002
            torch.manual_seed(seed)
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
        torch.random.set_rng_state(torch_state)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run a block with torch and the BLAS libraries numpy and scipy load on one thread each,
    restoring the caller's counts afterwards.

    Torch's CPU build calls MKL, whose dynamic threading picks a thread count per call from the
    machine's load, so that sums are split, and rounded, differently from run to run: the same
    seed stopped giving the same formula on a busy machine (2 runs in 6 of one test). One
    thread is deterministic, and the models here are too small to gain from more. numpy's and
    scipy's OpenBLAS start a thread per CPU for the symbolic stage's small solves: with the
    methods side by side (see emp_kan.discovery.run) the four threads on two CPUs made the
    default discover 31.4 s against 26.7 s on one thread each.
    """
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    limits = threadpool_limits(limits=1)
    try:
        yield
    finally:
        limits.restore_original_limits()
        torch.set_num_threads(before)


def single_threaded(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` run inside :func:`one_thread` (for the library's entry points)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_thread():
            return function(*args, **kwargs)

    return wrapper
