"""Importing pykan (``kan``, version 0.2.8) and making it behave while it runs: its
scikit-learn imports deferred, its prints sent to the log, its progress bars silenced and its
spline least squares solved deterministically. Only :mod:`emp_kan.kan.adapter` and the modules
that call pykan's own functions use this."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

log = logging.getLogger("emp_kan")

__all__ = ["import_pykan", "multkan_class", "quiet_pykan"]


# pykan imports scikit-learn for two things only: LinearRegression in kan.utils.fit_params
# (its auto_symbolic) and AgglomerativeClustering in kan.hypothesis (never called here).
# scikit-learn's import takes 0.65 s of pykan's 0.73 s (-X importtime), in every process that
# touches a KAN; pykan gets stand-ins that import the real class when first called.
_DEFERRED_SKLEARN = (
    ("sklearn.linear_model", "LinearRegression"),
    ("sklearn.cluster", "AgglomerativeClustering"),
)


def _deferred(module: str, name: str) -> Callable[..., Any]:
    def construct(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    construct.__name__ = construct.__qualname__ = name
    construct.__doc__ = f"``{module}.{name}``, imported when first called."
    return construct


# pykan also imports matplotlib.pyplot (0.26 s) and pandas (0.21 s) at its top, for its plots
# and one table; it gets modules that import the real one at their first attribute use.
_DEFERRED_MODULES = ("matplotlib.pyplot", "pandas")


class _ImportedOnUse(types.ModuleType):
    """Stands in for the module of the same name: its first attribute lookup imports the real
    module (taking this one out of ``sys.modules`` if it is still there) and every lookup is
    answered by the real one."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def import_pykan() -> None:
    """Import pykan, with :data:`_DEFERRED_SKLEARN` and :data:`_DEFERRED_MODULES` standing in
    for the real modules while it loads (those not loaded already). The stand-ins are taken
    out of ``sys.modules`` at once: any later import gets the real module."""
    if "kan" in sys.modules:
        return
    stubs: dict[str, types.ModuleType] = {}
    for module, name in _DEFERRED_SKLEARN:
        if module not in sys.modules:
            stub = types.ModuleType(module)
            setattr(stub, name, _deferred(module, name))
            stubs[module] = stub
    for module in _DEFERRED_MODULES:
        if module not in sys.modules:
            if "." in module:  # `import a.b as c` needs the package a itself
                importlib.import_module(module.rpartition(".")[0])
            stubs[module] = _ImportedOnUse(module)
    sys.modules.update(stubs)
    try:
        importlib.import_module("kan")
    finally:
        for module, stub in stubs.items():
            if sys.modules.get(module) is stub:
                del sys.modules[module]


def _kan_module():
    """The module ``kan.MultKAN`` (the package shadows its name with the class)."""
    import_pykan()
    return importlib.import_module("kan.MultKAN")


def multkan_class() -> type:
    """pykan's ``MultKAN`` class (``kan.KAN`` is the same class)."""
    return _kan_module().MultKAN


class _SilentTqdm:
    """Stands in for tqdm inside pykan: iterates, and keeps the description pykan sets."""

    def __init__(self, iterable: Any = None, *args: Any, **kwargs: Any) -> None:
        self.iterable = iterable
        self.description = ""

    def __iter__(self) -> Iterator[Any]:
        return iter(self.iterable)

    def set_description(self, desc: str = "", *args: Any, **kwargs: Any) -> None:
        self.description = desc


def _deterministic_curve2coef(x_eval, y_eval, grid, k):
    """pykan's spline least squares, solved by SVD (gelsd) in float64.

    pykan's own call uses LAPACK's gelsy in float32, whose result varies in the last bits from
    run to run on the same input; LBFGS amplifies that, so the same seed gave different pruning.
    gelsd returns the same minimum-norm solution, bit for bit on every run.

    Shapes: ``x_eval (batch, in)``, ``y_eval (batch, in, out)``, ``grid (in, G + 2k + 1)``;
    returns ``coef (in, out, G + k)``.
    """
    import_pykan()
    from kan.spline import B_batch

    batch, in_dim = x_eval.shape
    out_dim = y_eval.shape[2]
    n_coef = grid.shape[1] - k - 1
    mat = B_batch(x_eval, grid, k).permute(1, 0, 2)[:, None, :, :]
    mat = mat.expand(in_dim, out_dim, batch, n_coef).double()
    rhs = y_eval.permute(1, 2, 0).unsqueeze(dim=3).double()
    coef = torch.linalg.lstsq(mat, rhs, driver="gelsd").solution[:, :, :, 0]
    return coef.to(y_eval.dtype)


@contextlib.contextmanager
def quiet_pykan() -> Iterator[None]:
    """Make pykan behave while the block runs.

    Its prints go to the log at DEBUG level, its tqdm bars are switched off, and its spline
    least squares is solved deterministically (:func:`_deterministic_curve2coef`).
    """
    multkan = _kan_module()
    kan_layer = importlib.import_module("kan.KANLayer")  # loaded by _kan_module
    sink = io.StringIO()
    saved = (multkan.tqdm, multkan.curve2coef, kan_layer.curve2coef)
    multkan.tqdm = _SilentTqdm
    multkan.curve2coef = kan_layer.curve2coef = _deterministic_curve2coef
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        multkan.tqdm, multkan.curve2coef, kan_layer.curve2coef = saved
        text = sink.getvalue().strip()
        if text:
            log.debug("pykan said: %s", text)
