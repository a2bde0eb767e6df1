"""Tiny real pykan models and datasets shared by the tests (few samples, few steps)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings

from emp_kan.kan import adapter
from emp_kan.pruning.rounds import train

# Timing is not what these properties test; a loaded CI machine must not fail them on a deadline.
settings.register_profile("emp_kan", deadline=None)
settings.load_profile("emp_kan")


def different_tensors(a, b) -> list[str]:
    """The names of the state tensors in which models ``a`` and ``b`` differ (bitwise); the
    two must have the same state layout."""
    return [name for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(),
                                         strict=True) if not torch.equal(p, q)]  # fmt: skip


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
