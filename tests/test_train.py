"""The fast training path computes what pykan computes, and trains as pykan trains."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from emp_kan._runtime import threads
from emp_kan._runtime.memo import Memo
from emp_kan.kan import _pykan, adapter
from emp_kan.kan.fast.optim import FlatAdam, FlatLBFGS
from emp_kan.kan.fast.train import (
    _Forward,
    _Parameters,
    _regulariser,
    _update_grid,
    data_loss,
    fast_fit,
    kan_forward,
    supports,
)
from emp_kan.pruning.pruners import EMPPruner
from emp_kan.pruning.step import prune_step
from tests.conftest import different_tensors, make_dataset


def _random_model(width, grid, seed, mask_share=0.3, x=None, k=3):
    """A pykan model with random masked edges and, when ``x`` is given, a data-fitted grid."""
    model = adapter.make_kan(width, grid=grid, k=k, seed=seed)
    gen = np.random.default_rng(seed)
    masks = [m.numpy() & (gen.random(m.shape) > mask_share) for m in adapter.get_edge_masks(model)]
    for m in masks:  # every node keeps one edge, so no hidden node is left constant
        m[:, 0] = True
        m[0, :] = True
    adapter.set_edge_masks(model, masks)
    if x is not None:
        with _pykan.quiet_pykan(), torch.no_grad():
            model.update_grid(x)  # a non-uniform grid, as after training
    return model


CASES = [([2, 5, 1], 5), ([3, 4, 2, 1], 3), ([4, 6, 1], 7), ([1, 3, 3, 1], 4)]


@pytest.mark.parametrize(("width", "grid"), CASES)
def test_forward_equals_pykans(width, grid):
    x = torch.rand(300, width[0], generator=torch.Generator().manual_seed(1)) * 2 - 1
    model = _random_model(width, grid, seed=sum(width) + grid, x=x)
    x_new = torch.rand(200, width[0], generator=torch.Generator().manual_seed(2)) * 2.2 - 1.1
    with torch.no_grad():
        expected = model.forward(x_new)
        assert torch.allclose(kan_forward(model, x_new), expected, atol=1e-6, rtol=0)
        assert torch.allclose(_Forward(model, x)(x, False)[0], model.forward(x), atol=1e-6, rtol=0)


def test_forward_equals_pykans_after_nodes_are_removed(dataset, trained):
    step = prune_step(trained, dataset["train_input"], EMPPruner(target="both"))
    assert sum(adapter.widths(step.model)[1:-1]) < 4
    x = dataset["test_input"]
    with torch.no_grad():
        assert torch.allclose(kan_forward(step.model, x), step.model.forward(x), atol=1e-6)


@pytest.mark.parametrize(("width", "grid"), CASES[:2])
def test_regulariser_and_gradients_equal_pykans(width, grid):
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(256, width[0], generator=gen) * 2 - 1
    y = torch.sin(x.sum(dim=1, keepdim=True))
    model = _random_model(width, grid, seed=7, x=x)
    model.save_act = True
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(objective):
        for p in params:
            p.grad = None
        value = objective()
        value.backward()
        return float(value.detach()), [
            torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params
        ]

    def pykans():
        pred = model.forward(x)
        return torch.mean((pred - y) ** 2) + 0.01 * model.reg(
            "edge_forward_spline_n", 1.0, 2.0, 0.0, 0.0
        )

    forward = _Forward(model, x)

    def ours():
        pred, scales = forward(x, with_scales=True)
        return torch.mean((pred - y) ** 2) + 0.01 * _regulariser(scales)

    (v_ref, g_ref), (v_ours, g_ours) = grads(pykans), grads(ours)
    assert v_ours == pytest.approx(v_ref, rel=1e-5)
    for a, b in zip(g_ref, g_ours, strict=True):
        assert torch.allclose(a, b, atol=1e-4 * (float(a.abs().max()) + 1e-8), rtol=0)


@pytest.mark.parametrize("lamb", [0.0, 1e-3])
def test_short_training_lowers_the_loss_as_pykans_does(lamb):
    data = make_dataset(n_train=120, n_test=60)
    base = adapter.make_kan([3, 4, 1], grid=5, k=3, seed=0)
    before = adapter.rmse(base, data["test_input"], data["test_label"])
    ours, theirs = adapter.clone_model(base), adapter.clone_model(base)
    adapter.fit(ours, data, 6, lamb, seed=0, engine="fast")
    adapter.fit(theirs, data, 6, lamb, seed=0, engine="pykan")
    after_ours = adapter.rmse(ours, data["test_input"], data["test_label"])
    after_theirs = adapter.rmse(theirs, data["test_input"], data["test_label"])
    assert after_ours < 0.5 * before and after_theirs < 0.5 * before
    assert after_ours <= 1.5 * after_theirs
    # The trained object is still a pykan model: its own forward agrees with ours.
    with torch.no_grad():
        assert torch.allclose(
            ours.forward(data["test_input"]), kan_forward(ours, data["test_input"]), atol=1e-6
        )


def test_same_seed_gives_the_same_model_and_leaves_global_rngs_alone():
    data = make_dataset(n_train=80, n_test=20)
    random.random(), np.random.random(), torch.rand(1)  # noqa: NPY002
    states = (
        random.getstate(),
        np.random.get_state()[1].copy(),  # noqa: NPY002
        torch.random.get_rng_state(),
    )
    a, b = (adapter.make_kan([3, 3, 1], grid=4, k=3, seed=5) for _ in range(2))
    adapter.fit(a, data, 4, 1e-3, seed=9)
    adapter.fit(b, data, 4, 1e-3, seed=9)
    assert different_tensors(a, b) == []
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])  # noqa: NPY002
    assert torch.equal(torch.random.get_rng_state(), states[2])


def test_models_the_fast_path_does_not_cover_train_with_pykans_fit():
    data = make_dataset(n_train=60, n_test=20)
    model = adapter.make_kan([3, 2, 1], grid=3, k=3, seed=0)
    assert supports(model)
    adapter.fix_symbolic_edge(model, 0, 0, 0, "x", [1.0, 0.0, 1.0, 0.0])
    assert not supports(model)
    before = adapter.rmse(model, data["test_input"], data["test_label"])
    adapter.fit(model, data, 3, 0.0, seed=0, update_grid=False)
    assert adapter.rmse(model, data["test_input"], data["test_label"]) < before


@pytest.mark.parametrize("opt, lr", [("Adam", 1e20), ("LBFGS", 1e20)])
def test_a_diverging_fit_keeps_the_last_finite_parameters(dataset, opt, lr):
    # A step size that blows the parameters up must not leave NaN behind: the next grid
    # update (a least-squares solve) and every later round would fail on them.
    model = adapter.make_kan([3, 3, 1], grid=3, k=3, seed=0)
    fast_fit(model, dataset, 20, opt=opt, lr=lr)
    with torch.no_grad():
        assert torch.isfinite(model(dataset["train_input"])).all()
    fast_fit(model, dataset, 3, opt="LBFGS")  # and training can go on from there


def _assert_gradient_equals_autograds(model, x, labels, loss, lamb):
    """The compiled objective, its data part and its gradient equal autograd's on a float64
    copy of ``model`` (a float32 reference rounds more than the compiled loops, which run in
    float64)."""
    params = _Parameters(model)
    value, ours, gradient = _Forward(model, x).objective_and_gradient(params, labels, loss, lamb)
    wide = adapter.clone_model(model).double()
    trained = [
        getattr(wide.act_fun[i], name)
        if name in ("coef", "scale_base", "scale_sp")
        else getattr(wide, name)[i]
        for name, i, _ in params.entries
    ]
    pred, scales = _Forward(wide, x.double())(x.double(), with_scales=lamb > 0)
    ref_value = data_loss(pred, labels.double(), loss)
    ref_objective = ref_value + (lamb * _regulariser(scales) if lamb else 0.0)
    ref_gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(ref_objective, trained)])
    assert ours == pytest.approx(float(ref_objective.detach()), rel=1e-6)
    assert value == pytest.approx(float(ref_value.detach()), rel=1e-6)
    scale = float(ref_gradient.abs().max())
    assert torch.allclose(torch.from_numpy(gradient), ref_gradient, atol=1e-6 * scale, rtol=0)


def _with_trained_affines(model, seed):
    """``model`` with its node and subnode affines trainable and away from ``x -> x``."""
    gen = torch.Generator().manual_seed(seed)
    for name in ("subnode_scale", "subnode_bias", "node_scale", "node_bias"):
        for param in getattr(model, name):
            with torch.no_grad():
                param.add_(0.3 * torch.randn(param.shape, generator=gen))
            param.requires_grad_(True)
    return model


@pytest.mark.parametrize(("width", "grid"), CASES)
@pytest.mark.parametrize("lamb", [0.0, 0.01])
@pytest.mark.parametrize("affines", [False, True])
def test_the_hand_written_gradient_equals_autograds(width, grid, lamb, affines):
    # Training never runs autograd: the objective's gradient is written out layer by layer.
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(200, width[0], generator=gen) * 2 - 1
    y = torch.cos(x.sum(dim=1, keepdim=True)).repeat(1, width[-1])
    model = _random_model(width, grid, seed=11, x=x)
    if affines:
        model = _with_trained_affines(model, seed=grid)
    _assert_gradient_equals_autograds(model, x, y, "mse", lamb)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_the_gradient_equals_autograds_for_other_spline_orders(k):
    # k = 3 has its own unrolled basis; every other order runs the general triangle.
    gen = torch.Generator().manual_seed(k)
    x = torch.rand(160, 3, generator=gen) * 2 - 1
    y = torch.sin(x.sum(dim=1, keepdim=True))
    model = _random_model([3, 4, 2, 1], 4, seed=k, x=x, k=k)
    _assert_gradient_equals_autograds(model, x, y, "mse", 0.01)


def test_the_gradient_equals_autograds_where_points_leave_the_grid():
    # Between grid updates a layer's inputs can leave its grid: there pykan's basis is 0 and
    # only the silu part of an edge remains.
    gen = torch.Generator().manual_seed(9)
    x = torch.rand(200, 2, generator=gen) * 5 - 2.5  # the grid spans [-1, 1]
    y = torch.cos(x.sum(dim=1, keepdim=True))
    model = _random_model([2, 3, 1], 5, seed=2)
    _assert_gradient_equals_autograds(model, x, y, "mse", 0.01)


@pytest.mark.parametrize("lamb", [0.0, 0.01])
def test_the_cross_entropy_gradient_equals_autograds(lamb):
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(150, 4, generator=gen) * 2 - 1
    labels = torch.nn.functional.one_hot(torch.randint(0, 3, (150,), generator=gen), 3).float()
    model = _random_model([4, 5, 3], 5, seed=3, x=x)
    _assert_gradient_equals_autograds(model, x, labels, "cross_entropy", lamb)


@pytest.mark.parametrize(("width", "grid"), CASES[:2])
def test_grid_updates_equal_pykans(width, grid):
    gen = torch.Generator().manual_seed(8)
    x = torch.rand(300, width[0], generator=gen) * 3 - 1
    ours = _random_model(width, grid, seed=4, x=x[:50])
    ours.input_id = torch.arange(width[0]).flip(0)  # pykan reorders inputs after pruning
    theirs = adapter.clone_model(ours)
    with torch.no_grad():
        _update_grid(ours, x)
        theirs.update_grid(x)
    for a, b in zip(ours.act_fun, theirs.act_fun, strict=True):
        assert torch.allclose(a.grid, b.grid, atol=1e-6)
        assert torch.allclose(a.coef, b.coef, atol=1e-4)


def _rosenbrock(flat: torch.Tensor) -> torch.Tensor:
    return torch.sum(100 * (flat[1:] - flat[:-1] ** 2) ** 2 + (1 - flat[:-1]) ** 2)


def _flat_evaluate(point):
    with torch.enable_grad():
        leaf = torch.from_numpy(point).clone().requires_grad_(True)
        value = _rosenbrock(leaf)
        value.backward()
    return float(value.detach()), leaf.grad.numpy()


def test_flat_lbfgs_takes_pykans_steps():
    from kan.LBFGS import LBFGS

    start = torch.tensor([-1.2, 1.0, 0.5, -0.3], dtype=torch.float64)
    theirs = start.clone().requires_grad_(True)
    reference = LBFGS(
        [theirs],
        lr=1,
        history_size=10,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-32,
        tolerance_change=1e-32,
        tolerance_ys=1e-32,
    )

    def closure():
        reference.zero_grad()
        value = _rosenbrock(theirs)
        value.backward()
        return value

    ours = start.numpy().copy()
    optimizer = FlatLBFGS(ours, lr=1)
    for _ in range(3):
        reference.step(closure)
        optimizer.step(_flat_evaluate)
        assert np.allclose(ours, theirs.detach().numpy(), atol=1e-6, rtol=0)
    assert _rosenbrock(torch.from_numpy(ours)) < 0.1 * _rosenbrock(start)


def test_flat_adam_takes_torchs_steps():
    start = torch.tensor([-1.2, 1.0, 0.5, -0.3], dtype=torch.float64)
    theirs = start.clone().requires_grad_(True)
    reference = torch.optim.Adam([theirs], lr=0.05)
    ours = start.numpy().copy()
    optimizer = FlatAdam(ours, lr=0.05)
    for _ in range(30):
        reference.zero_grad()
        _rosenbrock(theirs).backward()
        reference.step()
        optimizer.step(_flat_evaluate)
    assert np.allclose(ours, theirs.detach().numpy(), atol=1e-12, rtol=0)


def test_one_thread_holds_torch_and_blas_to_one_thread_and_restores_the_callers_counts():
    import scipy.linalg  # noqa: F401 - loads scipy's own BLAS too
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=2):
        torch_before = torch.get_num_threads()
        blas_before = [
            (i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"
        ]
        with threads.one_thread():
            assert torch.get_num_threads() == 1
            assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
        assert torch.get_num_threads() == torch_before
        assert [
            (i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"
        ] == blas_before


def test_the_written_out_cubic_basis_is_the_general_triangle_bitwise():
    # k = 3 runs its own unrolled loop; it must be the general triangle, number for number
    # (points outside the grid included).
    from emp_kan.kan.fast import kernels

    rng = np.random.default_rng(0)
    knots = np.sort(rng.uniform(-1.5, 1.5, (3, 12)), axis=1)
    xt = rng.uniform(-2.0, 2.0, (3, 400))
    padded, inverse = kernels.padded_knots(knots, 3)
    out = []
    for basis in (kernels._basis_cubic, kernels._basis_any_order):
        arrays = (
            np.zeros((3, 400, 4)),
            np.zeros((3, 400, 4)),
            np.zeros((3, 400), np.int64),
            np.zeros((3, 400)),
            np.zeros((3, 400)),
        )
        basis(xt, padded, inverse, 3, *arrays)
        out.append(arrays)
    for cubic, general in zip(*out, strict=True):
        assert np.array_equal(cubic, general)
    assert ((xt < knots[:, :1]) | (xt >= knots[:, -1:])).any()  # points outside the grid too


def test_the_line_search_bisects_where_its_cubic_degenerates():
    from emp_kan.kan.fast.optim import _cubic_interpolate

    # flat ends with equal values: torch's formula divides by zero (a run at 1% noise crashed)
    assert _cubic_interpolate(0.0, 1.0, 0.0, 1.0, 1.0, 0.0) == 0.5
    assert _cubic_interpolate(1.0, 1.0, 0.0, 1.0, 1.0, 0.0, bounds=(0.0, 2.0)) == 1.0
    # an ordinary cubic still gives its minimiser: f = (x - 0.3)**2 on [0, 1]
    assert _cubic_interpolate(0.0, 0.09, -0.6, 1.0, 0.49, 1.4) == pytest.approx(0.3)


def _noisy_rows() -> dict[str, torch.Tensor]:
    """40 training rows of a noisy sine that a [1, 5, 1] KAN on a fine grid overfits, and 60
    held-out rows."""
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(100, 1, generator=gen) * 2 - 1
    y = torch.sin(3 * x) + 0.3 * torch.randn(100, 1, generator=gen)
    return {
        "train_input": x[:40],
        "train_label": y[:40],
        "test_input": x[40:],
        "test_label": y[40:],
    }


def _held_out_rmse(model, data) -> float:
    return adapter.rmse(model, data["test_input"], data["test_label"])


def test_early_stopping_ends_at_the_step_with_the_lowest_held_out_loss():
    data = _noisy_rows()
    base = adapter.make_kan([1, 5, 1], grid=10, k=3, seed=0)
    steps = 15
    # The fast path on one thread is deterministic: a k-step fit is the first k steps of a
    # longer one.
    after_step = []
    for k in range(1, steps + 1):
        model = adapter.clone_model(base)
        adapter.fit(model, data, k, 0.0, seed=0)
        after_step.append(_held_out_rmse(model, data))
    assert min(after_step) < 0.95 * after_step[-1]  # the plain fit does chase the noise
    stopped = adapter.clone_model(base)
    adapter.fit(stopped, data, steps, 0.0, seed=0, early_stopping=True)
    assert _held_out_rmse(stopped, data) == pytest.approx(min(after_step), rel=1e-5)
    # The grids came back with the parameters: pykan's own forward agrees with ours.
    with torch.no_grad():
        x = data["test_input"]
        assert torch.allclose(stopped.forward(x), kan_forward(stopped, x), atol=1e-6)


def test_a_memo_keeps_apart_fits_that_stop_on_different_held_out_rows():
    data = _noisy_rows()
    other = dict(data, test_input=data["test_input"][:20], test_label=-data["test_label"][:20])
    base = adapter.make_kan([1, 5, 1], grid=10, k=3, seed=0)
    memo = Memo()
    for rows in (data, other):
        alone, remembered = adapter.clone_model(base), adapter.clone_model(base)
        adapter.fit(alone, rows, 15, 0.0, seed=0, early_stopping=True)
        adapter.fit(remembered, rows, 15, 0.0, seed=0, early_stopping=True, memo=memo)
        assert different_tensors(alone, remembered) == []
    assert memo.hits == {}  # the second fit's rows differ only in the held-out rows
    again = adapter.clone_model(base)
    adapter.fit(again, data, 15, 0.0, seed=0, early_stopping=True, memo=memo)
    assert memo.hits == {"fit": 1}
