"""The one split: fit rows train, the last share of the training rows decide, test rows report."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from emp_kan.data.split import Split


def _dataset(n_train: int, n_test: int = 5, width: int = 2) -> dict[str, torch.Tensor]:
    x = torch.arange(n_train * width, dtype=torch.float32).reshape(n_train, width)
    return {
        "train_input": x,
        "train_label": x.sum(1, keepdim=True),
        "test_input": -torch.ones(n_test, width),
        "test_label": -torch.ones(n_test, 1),
    }


@settings(max_examples=60, deadline=None)
@given(n=st.integers(10, 400), fraction=st.floats(0.01, 0.9))
def test_fit_and_validation_rows_partition_the_training_rows_in_order(n, fraction):
    rows = Split.of(_dataset(n), fraction)
    fit_x, val_x = rows.fit["train_input"], rows.validation["x"]
    assert len(val_x) == max(1, int(n * fraction + 1e-9))
    assert torch.equal(torch.cat([fit_x, val_x]), rows.dataset["train_input"])
    assert torch.equal(rows.fit["test_input"], val_x)  # pykan logs its test loss on these
    assert torch.equal(rows.test["y"], -torch.ones(5, 1))  # the test rows reach no training


def test_too_few_training_rows_validate_on_themselves():
    rows = Split.of(_dataset(9), 0.2)
    assert torch.equal(rows.validation["x"], rows.dataset["train_input"])
    assert torch.equal(rows.fit["train_input"], rows.dataset["train_input"][:9])


def test_a_split_is_passed_on_as_carved_and_mapped_in_place():
    rows = Split.of(_dataset(50), 0.3)
    assert Split.of(rows, 0.5) is rows  # carved once: a later share does not carve again

    def doubled(data):
        return {key: 2 * value for key, value in data.items()}

    twice = rows.map(doubled)
    assert twice.fraction == 0.3
    assert torch.equal(twice.validation["y"], 2 * rows.validation["y"])
    assert torch.equal(twice.fit["train_input"], 2 * rows.fit["train_input"])


def test_rows_without_test_rows_report_their_validation_rows_as_test():
    data = _dataset(50)
    rows = Split.of_training_rows(data["train_input"], data["train_label"], 0.2)
    assert torch.equal(rows.test["x"], rows.validation["x"])
    assert torch.equal(rows.validation["x"], data["train_input"][40:])
    assert torch.equal(rows.fit["train_input"], data["train_input"][:40])
    assert Split.of(rows.dataset, 0.2).validation["x"].shape == (10, 2)  # carved the same again
