"""The one place that touches pykan (``kan``, version 0.2.8).

Everything here exists to make pykan behave like a library: no files written (``./model``,
``./figures``, ``copy_temp_*``), no prints, no progress bars of its own, and the caller's global
``random`` / numpy / torch generator states left as they were.

Orientation: emp_kan stores every per-layer edge array as ``(out, in)`` (like pykan's
``edge_scores``). pykan keeps its edge masks as ``(in, out)``; they are transposed here and only
here.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emp_kan._runtime.memo import Memo, digest, recall
from emp_kan._runtime.threads import one_thread, preserved_global_rng
from emp_kan.kan._pykan import import_pykan, multkan_class, quiet_pykan
from emp_kan.kan.fast import train as fast
from emp_kan.kan.topology import live_nodes

log = logging.getLogger("emp_kan")

# Per-forward caches that hold non-leaf tensors: deepcopy refuses them, and they are rebuilt by
# the next forward pass anyway.
_CACHE_ATTRS = (
    "cache_data",
    "acts",
    "acts_premult",
    "spline_preacts",
    "spline_postsplines",
    "spline_postacts",
    "acts_scale",
    "acts_scale_spline",
    "subnode_actscale",
    "edge_actscale",
    "node_scores",
    "edge_scores",
    "subnode_scores",
    "node_scores_all",
    "edge_scores_all",
    "subnode_scores_all",
)

DATASET_KEYS = ("train_input", "train_label", "test_input", "test_label")


def make_inert(model: Any) -> Any:
    # auto_save=True makes fit/prune write ./model (or crash when it is missing).
    model.auto_save = False
    return model


def check_model(model: Any) -> None:
    """Raise TypeError unless ``model`` is a pykan MultKAN with sum nodes only."""
    cls = multkan_class()
    if not isinstance(model, cls):
        raise TypeError(
            f"expected a pykan model (kan.KAN / kan.MultKAN), got {type(model).__name__}; "
            "build one with kan.KAN(width=[...], grid=..., k=...)"
        )
    if any(int(w[1]) != 0 for w in model.width):
        raise ValueError(
            "multiplication nodes are not supported yet; build the KAN with sum nodes only "
            "(width as a list of integers)"
        )


def make_kan(
    width: Sequence[int],
    grid: int = 5,
    k: int = 3,
    seed: int = 0,
    symbolic_enabled: bool = False,
    **kwargs: Any,
) -> Any:
    """A new pykan KAN that writes no files and leaves the global generators alone.

    Parameters
    ----------
    width : sequence of int
        Nodes per layer, inputs first, e.g. ``[2, 5, 1]``.
    grid, k : int
        Spline grid intervals and order.
    seed : int
        pykan's initialisation seed.
    symbolic_enabled : bool
        pykan's symbolic branch; off by default since it doubles the cost of a training step.
    """
    with preserved_global_rng(), quiet_pykan():
        model = multkan_class()(
            width=list(width),
            grid=grid,
            k=k,
            seed=seed,
            auto_save=False,
            symbolic_enabled=symbolic_enabled,
            **kwargs,
        )
    return model


def refine_grid(model: Any, grid: int, x: torch.Tensor) -> Any:
    """A copy of ``model`` on a finer spline grid (pykan's grid extension, file-free).

    Parameters
    ----------
    model : MultKAN
        A sum-node pykan model.
    grid : int
        Grid intervals of the copy.
    x : torch.Tensor
        ``(n, w_0)`` rows on which the copy's splines are fitted to the model's (least squares,
        as pykan's ``refine``); the copy's grid spans them.
    """
    check_model(model)
    source = clone_model(model)
    source.save_act = True  # initialize_from_another_model reads the splines' activations
    finer = make_kan(
        widths(model),
        grid=grid,
        k=int(model.k),
        grid_eps=float(model.grid_eps),
        symbolic_enabled=bool(model.symbolic_enabled),
    )
    with preserved_global_rng(), quiet_pykan(), torch.no_grad():
        finer.initialize_from_another_model(source, x)
    finer.save_act = model.save_act
    for name in _CACHE_ATTRS:  # the forward pass on x left them; the next one rebuilds them
        if name in finer.__dict__:
            finer.__dict__[name] = None
    return make_inert(finer)


def clone_model(model: Any) -> Any:
    """A deep copy of a pykan model, made in memory (pykan's ``copy()`` writes files)."""
    stash = {name: model.__dict__[name] for name in _CACHE_ATTRS if name in model.__dict__}
    try:
        for name in stash:
            model.__dict__[name] = None
        clone = copy.deepcopy(model)
    finally:
        model.__dict__.update(stash)
    return make_inert(clone)


def model_state(model: Any) -> dict[str, Any]:
    """A picklable description of a sum-node pykan model (pykan's own holds lambdas).

    Returns a dict: widths, grid size, spline order, grid_eps, the state dict (tensors cloned),
    the input order, the symbolic edges as ``(layer, out, in, name)`` and two flags.
    :func:`model_from_state` rebuilds an equivalent model.
    """
    check_model(model)
    symbolic = []
    for layer, sym in enumerate(model.symbolic_fun):
        mask = sym.mask.detach()
        for out in range(mask.shape[0]):
            for inp in range(mask.shape[1]):
                if float(mask[out, inp]) != 0.0:
                    symbolic.append((layer, out, inp, str(sym.funs_name[out][inp])))
    return {
        "widths": widths(model),
        "grid": int(model.grid),
        "k": int(model.k),
        "grid_eps": float(model.grid_eps),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "input_id": model.input_id.detach().clone(),
        "symbolic": symbolic,
        "symbolic_enabled": bool(model.symbolic_enabled),
        "save_act": bool(model.save_act),
    }


def model_from_state(state: Mapping[str, Any]) -> Any:
    """The pykan model :func:`model_state` described (no files, global generators untouched)."""
    model = make_kan(
        state["widths"],
        grid=state["grid"],
        k=state["k"],
        grid_eps=state["grid_eps"],
        symbolic_enabled=state["symbolic_enabled"],
    )
    for layer, out, inp, name in state["symbolic"]:
        fix_symbolic_edge(model, layer, out, inp, name, [1.0, 0.0, 1.0, 0.0])
    model.load_state_dict(state["state_dict"])  # masks and affine parameters included
    model.input_id = state["input_id"].clone()
    model.symbolic_enabled = state["symbolic_enabled"]
    model.save_act = state["save_act"]
    return model


def save_checkpoint(model: Any, prefix: str | os.PathLike) -> list[Path]:
    """Write ``model`` in pykan's own checkpoint format, loadable with
    ``kan.KAN.loadckpt(prefix)``: ``<prefix>_config.yml``, ``<prefix>_state`` and
    ``<prefix>_cache_data``. Returns the three paths; writes nothing else."""
    check_model(model)
    model.saveckpt(str(prefix))
    return [Path(f"{prefix}{end}") for end in ("_config.yml", "_state", "_cache_data")]


def load_checkpoint(prefix: str | os.PathLike) -> Any:
    """The model :func:`save_checkpoint` wrote (pykan's ``KAN.loadckpt``, no other file)."""
    import_pykan()
    from kan import KAN

    model = KAN.loadckpt(str(prefix))
    model.auto_save = False  # pykan would otherwise write checkpoints beside the caller
    return model


def widths(model: Any) -> list[int]:
    """Nodes per layer, inputs first, e.g. ``[2, 5, 1]``."""
    return [int(w[0]) for w in model.width]


def get_edge_masks(model: Any) -> list[torch.Tensor]:
    """Live-edge masks, one bool tensor of shape ``(out, in)`` per layer.

    An edge is live when its spline is on or it holds a symbolic function other than '0'.
    """
    out = []
    for numeric, sym in zip(model.act_fun, model.symbolic_fun, strict=True):
        live = numeric.mask.detach().T.clone().bool()
        sym_mask = sym.mask.detach().bool()
        if bool(sym_mask.any()):
            names = np.array(sym.funs_name, dtype=object)  # (out, in)
            live |= sym_mask & torch.as_tensor(names != "0")
        out.append(live)
    return out


def numeric_edge_masks(model: Any) -> list[np.ndarray]:
    """Edges still held by splines (not symbolic), one bool ``(out, in)`` array per layer."""
    return [layer.mask.detach().T.numpy().astype(bool) for layer in model.act_fun]


def edge_samples(model: Any, x: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each layer's edge inputs and outputs on ``x``: ``(pre, post)``, each ``(batch, out, in)``."""
    forward_pass(model, x)
    return [
        (
            pre.detach().cpu().numpy().astype(np.float64),
            post.detach().cpu().numpy().astype(np.float64),
        )
        for pre, post in zip(model.spline_preacts, model.spline_postacts, strict=True)
    ]


def fix_symbolic_edge(
    model: Any,
    layer: int,
    out: int,
    inp: int,
    name: str,
    params: Sequence[float],
    torch_function: Any = None,
    sympy_function: Any = None,
) -> None:
    """Make edge ``(layer, out, inp)`` into ``c * name(a * x + b) + d``, params ``a, b, c, d``.

    ``name`` is one of pykan's ``SYMBOLIC_LIB`` functions, or, with ``torch_function`` (and
    its ``sympy_function``), a function pykan does not know: the edge then computes
    ``torch_function`` and keeps ``name``, so that pykan's ``symbolic_formula`` and our reading
    of the model see it by name.
    """
    with quiet_pykan():
        model.fix_symbolic(
            layer,
            inp,
            out,
            name if torch_function is None else torch_function,
            fit_params_bool=False,
            verbose=False,
            log_history=False,
        )
    sym = model.symbolic_fun[layer]
    if torch_function is not None:
        sym.funs_name[out][inp] = name
        sym.funs_sympy[out][inp] = sympy_function or torch_function
    sym.affine.data[out, inp] = torch.tensor([float(p) for p in params], dtype=sym.affine.dtype)


def symbolic_edge(model: Any, layer: int, out: int, inp: int) -> tuple[str, list[float]]:
    """The function name and ``[a, b, c, d]`` of a symbolic edge."""
    sym = model.symbolic_fun[layer]
    return str(sym.funs_name[out][inp]), [float(v) for v in sym.affine.detach()[out, inp]]


def node_affines(model: Any, layer: int) -> tuple[np.ndarray, ...]:
    """``(subnode_scale, subnode_bias, node_scale, node_bias)`` of layer ``layer``'s outputs."""
    return tuple(
        p[layer].detach().cpu().numpy().astype(np.float64)
        for p in (model.subnode_scale, model.subnode_bias, model.node_scale, model.node_bias)
    )


def set_edge_masks(model: Any, masks: Sequence[Any]) -> None:
    """Write ``(out, in)`` bool masks into pykan's ``(in, out)`` float masks."""
    for layer, mask in zip(model.act_fun, masks, strict=True):
        m = torch.as_tensor(np.asarray(mask), dtype=layer.mask.dtype).T
        layer.mask.data.copy_(m.to(layer.mask.device))


def forward_pass(model: Any, x: torch.Tensor) -> torch.Tensor:
    """A fresh forward pass that refreshes pykan's cached activations; returns ``(batch, out)``."""
    save = model.save_act
    model.save_act = True
    try:
        with torch.no_grad():
            y = model.forward(x)
    finally:
        model.save_act = save
    return y


def forward_float64(model: Any, x: torch.Tensor) -> torch.Tensor:
    """``(batch, out)`` outputs of ``model`` on ``x (batch, in)``, computed in float64 on a copy.

    In float32 a row's output can differ by a rounding step with its place in the batch (the
    kernels treat the rows of a vector block and the tail differently); in float64 that step
    is far below any tolerance a user applies, so predictions do not depend on the batch.
    """
    copy64 = clone_model(model).double()
    copy64.save_act = False
    with torch.no_grad():
        return copy64.forward(x.double())


def attribution(model: Any, x: torch.Tensor) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """pykan's attribution scores after a fresh forward pass on ``x``.

    Returns
    -------
    edge_scores : list of ndarray, one ``(out, in)`` array per layer
    node_scores : list of ndarray, one ``(width,)`` array per layer, inputs to outputs
    """
    forward_pass(model, x)
    with torch.no_grad():
        model.attribute()
    edges = [e.detach().cpu().numpy().astype(np.float64) for e in model.edge_scores]
    nodes = [n.detach().cpu().numpy().astype(np.float64) for n in model.node_scores]
    return edges, nodes


def activation_magnitude(model: Any, x: torch.Tensor) -> list[np.ndarray]:
    """The KAN 1.0 L1 rule: std of an edge's output over (std of its input + 0.1), ``(out, in)``."""
    forward_pass(model, x)
    return [a.detach().cpu().numpy().astype(np.float64) for a in model.acts_scale]


def coefficient_magnitude(model: Any) -> list[np.ndarray]:
    """Mean |scaled spline coefficient| of each edge (the EMP paper's KAN score), ``(out, in)``."""
    out = []
    for layer in model.act_fun:
        scaled = layer.coef.detach().abs() * layer.scale_sp.detach().abs()[:, :, None]
        out.append((scaled.mean(dim=2) * layer.mask.detach()).T.cpu().numpy().astype(np.float64))
    return out


def remove_nodes(model: Any, keep: Sequence[Sequence[int]]) -> Any:
    """Structurally remove hidden nodes; ``keep[l]`` lists the kept nodes of hidden layer ``l+1``.

    Returns a new model (pykan's ``prune_node`` in manual mode, made side-effect free).
    """
    with preserved_global_rng(), quiet_pykan():
        smaller = model.prune_node(
            mode="manual", active_neurons_id=[list(map(int, k)) for k in keep], log_history=False
        )
    smaller.symbolic_enabled = model.symbolic_enabled
    smaller.save_act = model.save_act
    return make_inert(smaller)


def fit(
    model: Any,
    dataset: Mapping[str, torch.Tensor],
    steps: int,
    lamb: float,
    seed: int,
    opt: str = "LBFGS",
    update_grid: bool = True,
    engine: str = "fast",
    loss: str = "mse",
    lr: float = 1.0,
    memo: Memo | None = None,
    early_stopping: bool = False,
    **kwargs: Any,
) -> None:
    """Train in place: silent, file-free, reproducible from ``seed``.

    ``loss="cross_entropy"`` trains a classifier: outputs are logits, labels one-hot
    ``(n, classes)`` (see :func:`emp_kan.kan.fast.train.data_loss`).

    ``engine="fast"`` (the default) trains with :func:`emp_kan.kan.fast.train.fast_fit`, pykan's
    ``fit`` with the same meaning at a fraction of the cost; ``engine="pykan"`` (or a model the
    fast path does not cover, or extra pykan keyword arguments) runs pykan's own ``fit``, whose
    batches come from the global numpy generator: it is seeded here and restored afterwards.
    With a ``memo``, a fast fit identical to one done before in it (same state, rows and
    settings) is not done again: its result is loaded. ``early_stopping`` ends the fast path at
    its step with the lowest loss on ``dataset``'s ``test_*`` rows, which must then be
    validation rows (see :func:`emp_kan.kan.fast.train.fast_fit`); pykan's ``fit`` always
    ends at its last step.
    """
    if engine not in ("fast", "pykan"):
        raise ValueError(f"engine must be 'fast' or 'pykan', got {engine!r}")
    if steps <= 0:
        return

    dead = (
        []
        if not update_grid
        else [
            (layer, int(i))
            for layer, live in enumerate(live_nodes([m.numpy() for m in get_edge_masks(model)]))
            for i in np.flatnonzero(~live)
        ]
    )
    if dead:
        # pykan's grid update would fail on them (lstsq on a constant node: "coef" unbound).
        raise ValueError(
            f"hidden nodes {dead} (layer, index) have no live input or output edge; remove them "
            "first (emp_kan.pruning.step.prune_step compacts the model)"
        )
    make_inert(model)

    with preserved_global_rng(seed), quiet_pykan(), one_thread():
        if engine == "fast" and not kwargs and fast.supports(model):
            # No seed: the fast path draws no random numbers (a test holds fits with
            # different seeds equal), so the retraining attempts that differ only in it match.
            settings = (steps, lamb, opt, update_grid, loss, lr, early_stopping)

            def train_here() -> dict[str, torch.Tensor]:
                fast.fast_fit(
                    model,
                    dataset,
                    steps,
                    lamb,
                    opt=opt,
                    update_grid=update_grid,
                    loss=loss,
                    lr=lr,
                    early_stopping=early_stopping,
                )
                return {k: v.detach().clone() for k, v in model.state_dict().items()}

            # An identical fit (both methods reaching the same pruned model) is done once;
            # the fast path is deterministic in this key.
            key = "" if memo is None else _fit_key(model, dataset, settings, early_stopping)
            trained = recall(memo, "fit", key, train_here)
            model.load_state_dict(trained)
        else:
            if loss != "mse":
                kwargs["loss_fn"] = lambda pred, labels: fast.data_loss(pred, labels, loss)
            model.fit(
                dict(dataset),
                opt=opt,
                steps=steps,
                lamb=lamb,
                update_grid=update_grid,
                lr=lr,
                **kwargs,
            )


def _fit_key(
    model: Any, dataset: Mapping[str, torch.Tensor], settings: tuple, held_out: bool
) -> str:
    """A digest of everything :func:`emp_kan.kan.fast.train.fast_fit` reads: the model's
    state, which tensors train, its layers' grid settings, the training rows (and with
    ``held_out`` the test rows, which then pick the step it ends at) and the settings."""
    rows = ["train_input", "train_label"] + (["test_input", "test_label"] if held_out else [])
    layers = [(layer.num, layer.k, float(layer.grid_eps)) for layer in model.act_fun]
    trains = [(name, p.requires_grad) for name, p in model.named_parameters()]
    return digest(
        dict(model.state_dict()),
        trains,
        layers,
        list(model.width),
        model.input_id,
        [dataset[name] for name in rows],
        list(settings),
    )


def rmse(model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    """Root mean squared error of the model on ``(x, y)``; NaN when the output is not finite."""
    with torch.no_grad():
        save = model.save_act
        model.save_act = False
        try:
            pred = model.forward(x)
        finally:
            model.save_act = save
        return float(torch.sqrt(torch.mean((pred - y) ** 2)))
