"""The one split of a dataset into fit, validation and test rows, carved once and passed down.

Training sees the fit rows; every decision (accepting a pruning round, choosing a formula,
snapping a constant) is taken on the validation rows, the last share of the training rows;
the test rows only report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Split", "fewer_training_rows"]

Rows = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Split:
    """A pykan dataset and its rows, carved once.

    Attributes
    ----------
    dataset : dict of torch.Tensor
        The whole pykan dataset: ``train_input (n, w_0)``, ``train_label (n, w_L)``,
        ``test_input (m, w_0)``, ``test_label (m, w_L)``.
    fraction : float
        The share of the training rows that validate.
    fit : dict of torch.Tensor
        A pykan dataset for training: the first ``n - n_val`` training rows, with the validation
        rows in its ``test_*`` slots (pykan's ``fit`` logs a test loss on them), so that the
        test rows never reach training.
    validation : dict of torch.Tensor
        ``{"x": (n_val, w_0), "y": (n_val, w_L)}``, the last ``n_val = max(1, floor(n *
        fraction))`` training rows; with fewer than 10 training rows there is nothing to carve
        and these are the training rows themselves.
    """

    dataset: Rows
    fraction: float
    fit: Rows
    validation: Rows

    @classmethod
    def of(cls, dataset: Mapping[str, torch.Tensor] | Split, fraction: float = 0.2) -> Split:
        """The split of ``dataset`` with ``fraction`` of its training rows validating; a
        :class:`Split` is returned as it is (its rows were carved already)."""
        if isinstance(dataset, Split):
            return dataset
        data = dict(dataset)
        x, y = data["train_input"], data["train_label"]
        n = x.shape[0]
        n_val = max(1, int(n * fraction + 1e-9)) if n >= 10 else 0
        validation = {"x": x[n - n_val :], "y": y[n - n_val :]} if n_val else {"x": x, "y": y}
        fit = {
            "train_input": x[: n - n_val],
            "train_label": y[: n - n_val],
            "test_input": validation["x"],
            "test_label": validation["y"],
        }
        return cls(data, fraction, fit, validation)

    @classmethod
    def of_training_rows(cls, x: torch.Tensor, y: torch.Tensor, fraction: float = 0.2) -> Split:
        """The split of rows ``x (n, w_0)``, ``y (n, w_L)`` with no test rows of their own (an
        estimator's ``fit``): the validation rows stand in for the test rows, so that the
        figures reported as "test" are the validation ones."""
        empty = {"train_input": x, "train_label": y, "test_input": x[:0], "test_label": y[:0]}
        carved = cls.of(empty, fraction)
        val = carved.validation
        dataset = dict(carved.dataset, test_input=val["x"], test_label=val["y"])
        return cls(dataset, fraction, carved.fit, val)

    @property
    def test(self) -> Rows:
        """``{"x": (m, w_0), "y": (m, w_L)}``: the rows that only report."""
        return {"x": self.dataset["test_input"], "y": self.dataset["test_label"]}

    def map(self, change: Callable[[Rows], Rows]) -> Split:
        """The same rows after ``change`` (a function of a pykan dataset that keeps its rows in
        place, such as a :class:`~emp_kan.symbolic.transform.LogTransform`'s ``apply``)."""
        return Split.of(change(self.dataset), self.fraction)


def fewer_training_rows(
    dataset: Mapping[str, torch.Tensor], max_rows: int, fraction: float, seed: int
) -> dict[str, torch.Tensor]:
    """``dataset`` with at most ``max_rows`` training rows, drawn with ``seed``: fit rows from
    its fit rows and validation rows from its validation rows (in the same shares), so that
    :meth:`Split.of` on the result carves the drawn validation rows and no row changes side.
    The test rows are all kept."""
    rows = Split.of(dataset, fraction)
    n = rows.dataset["train_input"].shape[0]
    if n <= max_rows:
        return rows.dataset
    n_val = max(1, int(max_rows * fraction + 1e-9))
    rng = np.random.default_rng([seed, 0x726F7773])  # a stream apart from the data's
    fit_x, fit_y = rows.fit["train_input"], rows.fit["train_label"]
    val_x, val_y = rows.validation["x"], rows.validation["y"]
    fit_pick = np.sort(rng.choice(len(fit_x), max_rows - n_val, replace=False))
    val_pick = np.sort(rng.choice(len(val_x), n_val, replace=False))
    return dict(
        rows.dataset,
        train_input=torch.cat([fit_x[fit_pick], val_x[val_pick]]),
        train_label=torch.cat([fit_y[fit_pick], val_y[val_pick]]),
    )
