"""Tiny real pykan models and datasets shared by the tests (few samples, few steps)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch
from hypothesis import settings

from emp_kan.kan import adapter
from emp_kan.kan.training import train

# Timing is not what these properties test; a loaded CI machine must not fail them on a deadline.
settings.register_profile("emp_kan", deadline=None)
settings.load_profile("emp_kan")


def different_tensors(a, b) -> list[str]:
    """The names of the state tensors in which models ``a`` and ``b`` differ (bitwise); the
    two must have the same state layout."""
    return [
        name
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True)
        if not torch.equal(p, q)
    ]


def count_calls(monkeypatch, owner, name: str) -> list[int]:
    """Replace ``owner.name`` by a wrapper that appends 1 to the returned list on each call."""
    calls: list[int] = []
    original = getattr(owner, name)

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def make_dataset(n_train: int = 60, n_test: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    """y = sin(pi x0) + x1^2 on [-1, 1]^2, plus an irrelevant third input."""
    gen = torch.Generator().manual_seed(seed)

    def split(n):
        x = torch.rand(n, 3, generator=gen) * 2 - 1
        y = torch.sin(torch.pi * x[:, [0]]) + x[:, [1]] ** 2
        return x, y

    x_tr, y_tr = split(n_train)
    x_te, y_te = split(n_test)
    return {"train_input": x_tr, "train_label": y_tr, "test_input": x_te, "test_label": y_te}


@pytest.fixture(scope="session")
def dataset():
    return make_dataset()


@pytest.fixture(scope="session")
def trained(dataset):
    """A [3, 4, 1] KAN trained for a few steps with sparsity regularisation."""
    model = adapter.make_kan([3, 4, 1], grid=3, k=3, seed=0)
    return train(model, dataset, steps=6, lamb=1e-2, seed=0)


# Keys whose strings are formulas: two processes may print the same function in different
# but equal forms (sympy's term order and float printing are not fixed across processes).
FORMULA_KEYS = frozenset({"formula", "function", "truth"})
# Per-process facts, not results: how long things took, and the LaTeX that prints a formula
# compared by value under "formula".
VOLATILE_KEYS = frozenset({"timings", "latex"})


def _same_function(a: str, b: str, rtol: float = 1e-9) -> bool:
    """Whether formula strings ``a`` and ``b`` give the same values at random points."""
    try:
        ea, eb = sympy.sympify(a), sympy.sympify(b)
    except (sympy.SympifyError, TypeError, SyntaxError):
        return False
    symbols = sorted(ea.free_symbols | eb.free_symbols, key=str)
    if not symbols:
        return math.isclose(complex(ea), complex(eb), rel_tol=rtol, abs_tol=rtol)
    fa, fb = (sympy.lambdify(symbols, e, "numpy") for e in (ea, eb))
    points = np.random.default_rng(0).uniform(0.3, 1.7, size=(len(symbols), 64))
    with np.errstate(all="ignore"):
        va = np.broadcast_to(np.asarray(fa(*points), dtype=complex), points.shape[1:])
        vb = np.broadcast_to(np.asarray(fb(*points), dtype=complex), points.shape[1:])
    return bool(np.allclose(va, vb, rtol=rtol, atol=rtol, equal_nan=True))


def report_differences(a, b, path: str = "report") -> list[str]:
    """Where reports ``a`` and ``b`` differ as results: every number and word must be equal,
    formulas equal by value (see :data:`FORMULA_KEYS`); timings and LaTeX are ignored."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [] if a.keys() == b.keys() else [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        for key in a.keys() & b.keys():
            if key in VOLATILE_KEYS or "second" in key:
                continue
            if key in FORMULA_KEYS and isinstance(a[key], str) and isinstance(b[key], str):
                if a[key] != b[key] and not _same_function(a[key], b[key]):
                    out.append(f"{path}.{key}: {a[key]!r} != {b[key]!r}")
                continue
            out += report_differences(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in report_differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b or (a != a and b != b) else [f"{path}: {a!r} != {b!r}"]
