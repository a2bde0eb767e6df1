"""Training a KAN as pykan's ``fit`` would, through the fast path where it applies: the
one entry for a single training run, with the dataset checked first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from emp_kan._runtime import threads
from emp_kan._runtime.checks import check_finite_nonneg, check_whole
from emp_kan.kan import adapter

__all__ = ["check_dataset", "train"]


def check_dataset(dataset: Any, n_inputs: int | None = None, n_outputs: int | None = None) -> None:
    """Raise ValueError unless ``dataset`` is a pykan dataset dict that fits the model.

    A pykan dataset maps ``train_input`` / ``test_input`` (``(n, w_0)`` float tensors) and
    ``train_label`` / ``test_label`` (``(n, w_L)``) to torch tensors.
    """
    if not isinstance(dataset, Mapping):
        raise ValueError(
            f"dataset must be a dict with keys {', '.join(adapter.DATASET_KEYS)}, "
            f"got {type(dataset).__name__}"
        )
    missing = [k for k in adapter.DATASET_KEYS if k not in dataset]
    if missing:
        raise ValueError(
            f"dataset is missing {', '.join(missing)}; kan.utils.create_dataset builds all four"
        )
    for key in adapter.DATASET_KEYS:
        value = dataset[key]
        if not isinstance(value, torch.Tensor) or value.ndim != 2:
            shape = getattr(value, "shape", None)
            raise ValueError(f"dataset[{key!r}] must be a 2-D torch tensor, got shape {shape}")
        if value.shape[0] == 0:
            raise ValueError(f"dataset[{key!r}] has no rows")
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise ValueError(f"dataset[{key!r}] has {bad} NaN or infinite entries; drop them")
    for split in ("train", "test"):
        x, y = dataset[f"{split}_input"], dataset[f"{split}_label"]
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{split}_input has {x.shape[0]} rows but {split}_label has {y.shape[0]}"
            )
    if dataset["train_input"].shape[1] != dataset["test_input"].shape[1]:
        raise ValueError("train_input and test_input have different numbers of columns")
    if n_inputs is not None and dataset["train_input"].shape[1] != n_inputs:
        raise ValueError(
            f"the model takes {n_inputs} inputs but the dataset has "
            f"{dataset['train_input'].shape[1]} input columns"
        )
    if n_outputs is not None and dataset["train_label"].shape[1] != n_outputs:
        raise ValueError(
            f"the model has {n_outputs} outputs but the dataset has "
            f"{dataset['train_label'].shape[1]} label columns"
        )


@threads.single_threaded
def train(
    model: Any,
    dataset: Mapping[str, torch.Tensor],
    steps: int = 50,
    lamb: float = 1e-3,
    seed: int = 0,
    opt: str = "LBFGS",
    update_grid: bool = True,
    loss: str = "mse",
    lr: float = 1.0,
    early_stopping: bool = False,
) -> Any:
    """Train a copy of ``model`` as pykan's ``fit`` would (through the fast path of
    :mod:`emp_kan.kan.fast.train` where it applies); silent, file-free, reproducible.

    With ``early_stopping`` the copy is the one of the step with the lowest loss on
    ``dataset``'s ``test_*`` rows, which must then be validation rows (a
    :attr:`~emp_kan.data.split.Split.fit` dataset holds them there).

    Returns the trained copy; ``model`` and the global generators are left as they were.
    """
    adapter.check_model(model)
    w = adapter.widths(model)
    check_dataset(dataset, w[0], w[-1])
    steps = check_whole("steps", steps)
    lamb = check_finite_nonneg("lamb", lamb)
    trained = adapter.clone_model(model)
    adapter.fit(
        trained,
        dataset,
        steps,
        lamb,
        seed,
        opt=opt,
        update_grid=update_grid,
        loss=loss,
        lr=lr,
        early_stopping=early_stopping,
    )
    return trained
