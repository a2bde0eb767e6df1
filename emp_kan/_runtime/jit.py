"""numba's compiled loops, and where their machine code is kept between processes.

Compiling emp_kan's loops takes about 2 s in every process that trains, and as much again in
one that runs the product search. numba can keep the machine code in the ``__pycache__``
folder beside each module and load it in milliseconds. emp_kan lets it write there only

* where Python itself may write bytecode there (no ``-B``, no ``PYTHONDONTWRITEBYTECODE``, a
  writable folder), as numba's own ``cache=True`` would; or
* when asked to, by ``python -m emp_kan.app.precompile`` (bootstrap.sh's install step runs it),

and reads what is there in every process: code kept at install time serves every later run,
which writes nothing. An entry whose module's source changed since, or that was compiled for
another CPU, is not used: the loop is compiled in memory, as without a cache. numba's other
places (a folder in the user's home) are never used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from numba import njit
from numba.core import config as numba_config

try:  # numba's own classes, which this module narrows; where they differ, no cache at all
    from numba.core.caching import CompileResultCacheImpl, FunctionCache, InTreeCacheLocator
except ImportError:  # pragma: no cover - another numba than constraints.txt pins
    CompileResultCacheImpl = FunctionCache = InTreeCacheLocator = None

__all__ = ["bytecode_may_be_written", "compiled", "keep_compiled_code"]

_asked_to_keep = False  # set by keep_compiled_code (python -m emp_kan.app.precompile)


def keep_compiled_code() -> None:
    """Let this process write the machine code of every loop it compiles from now on beside
    its module, even where Python may not write bytecode: the install step's request. Must
    come before the modules with compiled loops are imported."""
    global _asked_to_keep
    _asked_to_keep = True


def bytecode_may_be_written(module_file: str) -> bool:
    """Whether Python itself may keep bytecode in the ``__pycache__`` beside ``module_file``."""
    here = os.path.dirname(os.path.abspath(module_file))
    pycache = os.path.join(here, "__pycache__")
    return not sys.flags.dont_write_bytecode and (
        os.access(pycache, os.W_OK) if os.path.isdir(pycache) else os.access(here, os.W_OK)
    )


def _writes(module_file: str) -> bool:
    return _asked_to_keep or bytecode_may_be_written(module_file)


class _BesideTheModule(InTreeCacheLocator or object):  # type: ignore[misc]
    """numba's in-tree locator (``__pycache__`` beside the module), which makes or probes the
    folder only where it may write there; otherwise it is used only if the folder exists."""

    @classmethod
    def from_function(cls, py_func: Callable, py_file: str) -> _BesideTheModule | None:
        if not os.path.exists(py_file):
            return None
        self = cls(py_func, py_file)
        if _writes(py_file):
            try:
                self.ensure_cache_path()
            except OSError:
                return None
        elif not os.path.isdir(self.get_cache_path()):
            return None
        return self


class _Impl(CompileResultCacheImpl or object):  # type: ignore[misc]
    _locator_classes = [_BesideTheModule]


class _KeptCode(FunctionCache or object):  # type: ignore[misc]
    """numba's per-function cache through :class:`_BesideTheModule`, saving only where
    :func:`_writes` allows."""

    _impl_class = _Impl

    def _save_overload(self, sig: Any, data: Any) -> None:
        if _writes(self._py_func.__code__.co_filename):
            super()._save_overload(sig, data)


def compiled(**options: Any) -> Callable[[Callable], Any]:
    """``numba.njit(**options)`` with the cache described in this module."""

    def decorate(function: Callable) -> Any:
        dispatcher = njit(**options)(function)
        # NUMBA_CACHE_LOCATOR_CLASSES would replace our locator with the user's choice of
        # numba's, some of which write into the home folder: no cache then.
        if (
            FunctionCache is None
            or getattr(numba_config, "CACHE_LOCATOR_CLASSES", None)
            or not hasattr(dispatcher, "_cache")
        ):
            return dispatcher
        try:
            dispatcher._cache = _KeptCode(function)
        except (RuntimeError, OSError):  # no folder to read from, none we may make
            pass
        return dispatcher

    return decorate
