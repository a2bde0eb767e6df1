"""Work shared inside one run is the work a fresh computation would do, done once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from emp_kan._runtime.memo import Memo, Pending, digest, recall
from emp_kan.kan import adapter
from emp_kan.kan.fast import train as fast
from tests.conftest import count_calls, different_tensors, make_dataset


@pytest.fixture
def counted_fits(monkeypatch):
    """How many times the fast path really trained."""
    return count_calls(monkeypatch, fast, "fast_fit")


def test_the_fast_path_draws_no_random_numbers_so_the_seed_does_not_change_a_fit():
    data = make_dataset(n_train=80, n_test=20)
    for opt in ("LBFGS", "Adam"):
        a, b = (adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5) for _ in range(2))
        adapter.fit(a, data, 3, 1e-3, seed=0, opt=opt)
        adapter.fit(b, data, 3, 1e-3, seed=11, opt=opt)
        assert not different_tensors(a, b), opt


def test_an_identical_fit_given_a_memo_is_done_once_with_the_same_result(counted_fits):
    data = make_dataset(n_train=80, n_test=20)
    fresh = adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5)
    adapter.fit(fresh, data, 3, 1e-3, seed=0)
    assert len(counted_fits) == 1
    with Memo() as memo:
        first, second = (adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5) for _ in range(2))
        adapter.fit(first, data, 3, 1e-3, seed=0, memo=memo)
        adapter.fit(second, data, 3, 1e-3, seed=4, memo=memo)
        assert len(counted_fits) == 2
        assert memo.hits == {"fit": 1}
        assert not different_tensors(second, fresh) and not different_tensors(first, fresh)
        # The kept result is a copy: changing a trained model does not change what is handed out.
        with torch.no_grad():
            first.act_fun[0].coef.add_(1.0)
        third = adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5)
        adapter.fit(third, data, 3, 1e-3, seed=0, memo=memo)
        assert not different_tensors(third, fresh)


def test_fits_that_differ_in_state_rows_or_settings_are_all_trained(counted_fits):
    data = make_dataset(n_train=80, n_test=20)
    other_rows = dict(data, train_label=data["train_label"] + 0.1)
    masked = adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5)
    masks = [m.numpy() for m in adapter.get_edge_masks(masked)]
    masks[0][0, 0] = False
    adapter.set_edge_masks(masked, masks)
    with Memo() as memo:
        runs = [
            (adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5), data, 3, 1e-3, "LBFGS"),
            (adapter.make_kan([3, 3, 1], grid=4, k=3, seed=6), data, 3, 1e-3, "LBFGS"),
            (masked, data, 3, 1e-3, "LBFGS"),
            (adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5), other_rows, 3, 1e-3, "LBFGS"),
            (adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5), data, 4, 1e-3, "LBFGS"),
            (adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5), data, 3, 0.0, "LBFGS"),
            (adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5), data, 3, 1e-3, "Adam"),
        ]
        for model, rows, steps, lamb, opt in runs:
            adapter.fit(model, rows, steps, lamb, seed=0, opt=opt, memo=memo)
        assert len(counted_fits) == len(runs)
        assert memo.hits == {}


def test_nothing_is_kept_without_a_memo(counted_fits):
    data = make_dataset(n_train=60, n_test=20)
    for _ in range(2):
        adapter.fit(adapter.make_kan([3, 2, 1], grid=3, k=3, seed=1), data, 2, 0.0, seed=0)
    assert len(counted_fits) == 2
    calls = []
    for _ in range(2):
        recall(None, "kind", "key", lambda: calls.append(1))
    assert calls == [1, 1]


def test_two_memos_keep_their_own_results():
    calls = []
    one, other = Memo(), Memo()
    for memo in (one, other, one):
        memo.recall("x", "k", lambda: calls.append(1))
    assert calls == [1, 1] and one.hits == {"x": 1} and other.hits == {}


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 6), elements=st.floats(-1e3, 1e3)))
def test_digest_tells_dtype_shape_and_values_apart(values):
    assert digest(values) == digest(values.copy())
    assert digest(values) == digest(torch.from_numpy(values.copy()))
    assert digest(values) != digest(values.astype(np.float32))
    assert digest(values) != digest(values.reshape(1, -1))
    changed = values.copy()
    changed[0] = changed[0] + 1.0
    assert digest(values) != digest(changed)
    assert digest([values, 1]) != digest([values, 1.0])


def test_digest_refuses_what_it_cannot_read():
    with pytest.raises(TypeError, match="cannot digest"):
        digest(object())


def _ask(memo, kind, key):
    return memo.recall(kind, key, lambda: "computed in the fork")


def _in_a_fork(memo, kind, key):
    from emp_kan._runtime.forked import Child

    return Child(_ask, (memo, kind, key), "a test")


def _pending(value, log):
    def fetch():
        log.append("fetched")
        if isinstance(value, Exception):
            raise value
        return value

    return Pending(fetch, lambda: log.append("closed"))


def test_a_pending_result_is_fetched_once_when_asked_for_and_passed_on_to_a_later_fork():
    log = []
    with Memo() as memo:
        memo.remember("search", "k", _pending(["found elsewhere"], log))
        assert log == []  # nothing waits until someone asks
        memo.share_pending_with_a_fork()
        fork = _in_a_fork(memo, "search", "k")
        assert memo.recall("search", "k", lambda: ["computed here"]) == ["found elsewhere"]
        assert fork.result() == ["found elsewhere"]  # passed on, not computed again
        assert memo.recall("search", "k", lambda: ["computed here"]) == ["found elsewhere"]
        assert memo.hits == {"search": 2}
    assert log == ["fetched", "closed"]  # fetched once; the other process closed with the block


def test_where_the_other_process_failed_the_result_is_computed_and_passed_on():
    with Memo() as memo:
        memo.remember("search", "k", _pending(RuntimeError("the worker died"), []))
        memo.share_pending_with_a_fork()
        fork = _in_a_fork(memo, "search", "k")
        assert memo.recall("search", "k", lambda: "computed here") == "computed here"
        assert fork.result() == "computed here"


def test_a_fork_computes_the_result_itself_when_nobody_here_asked_for_it():
    log = []
    with Memo() as memo:
        memo.remember("search", "k", _pending(None, log))  # the other process has no result
        memo.share_pending_with_a_fork()
        fork = _in_a_fork(memo, "search", "k")
        memo.settle_pending()  # nothing here asks: the fork must not wait for this process
        assert fork.result() == "computed in the fork"
    assert log == ["fetched", "closed"]


def test_a_fork_made_without_a_pipe_computes_the_result_itself():
    log = []
    with Memo() as memo:
        memo.remember("search", "k", _pending(["found elsewhere"], log))
        fork = _in_a_fork(memo, "search", "k")  # no share_pending_with_a_fork before it
        assert fork.result() == "computed in the fork"
        assert memo.recall("search", "k", lambda: ["computed here"]) == ["found elsewhere"]
