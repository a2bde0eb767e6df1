"""Write a discovery report folder, all at once or not at all, never over a user's files.

Everything is written into a fresh hidden folder beside the destination and moved into place
with one rename (into a user's empty folder: file by file, with links that never overwrite),
so a failure or Ctrl-C leaves no partial folder behind. The destination may
be missing, an empty folder, or an earlier emp-kan report (recognised by the marker file this
module writes and by holding nothing but report files); anything else is refused with
:class:`DestinationError` before any work, and nothing of the user's is ever moved, renamed or
deleted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from emp_kan import __version__
from emp_kan.data.formula_parse import parse_formula
from emp_kan.discovery.run import candidate_source
from emp_kan.draw.graph import edge_curves, mark_pieces, to_networkx
from emp_kan.draw.plotting import plot_graph, plot_history
from emp_kan.kan import adapter

log = logging.getLogger("emp_kan")

__all__ = [
    "DestinationError",
    "MARKER",
    "REPORT_FILES",
    "check_destination",
    "render_figures",
    "write_report",
]

#: The file that marks a folder as written by :func:`write_report`.
MARKER = ".emp-kan-report"
#: Every name a report folder may hold; a folder holding anything else is not replaced.
REPORT_FILES = frozenset(
    {
        MARKER,
        "report.json",
        "graph.png",
        "graph.graphml",
        "history.png",
        "fit.png",
        "graph-threshold.png",
        "history-threshold.png",
        "model_config.yml",
        "model_state",
        "model_cache_data",
    }
)


class DestinationError(ValueError):
    """The report destination holds something that is not ours to replace."""


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")  # pragma: no cover - the root always exists


def check_destination(out_dir: str | os.PathLike) -> Path:
    """Raise :class:`DestinationError` unless a report can be written at ``out_dir``.

    Allowed: a path that does not exist yet (in a writable place), an empty folder, or an
    earlier emp-kan report folder. Call it before any training, so a bad ``--out`` fails fast.
    Creates nothing: writability is probed with a temporary folder that is removed at once.
    """
    out = Path(out_dir)
    if out.is_symlink():
        raise DestinationError(f"{out} is a symbolic link; give a new folder name for the report")
    if out.exists():
        if not out.is_dir():
            raise DestinationError(
                f"{out} is an existing file; give a new folder name for the report "
                "(emp-kan never replaces a file)"
            )
        names = {p.name for p in out.iterdir()}
        ours = all((out / n).is_file() and not (out / n).is_symlink() for n in names)
        if names and (MARKER not in names or not names <= REPORT_FILES or not ours):
            foreign = sorted(names - REPORT_FILES)
            shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
            what = (
                f"files that are not an emp-kan report ({shown})"
                if MARKER in names
                else "files and is not an emp-kan report"
            )
            raise DestinationError(
                f"{out} already holds {what}; give a new or empty folder for the report"
            )
    base = _nearest_existing(out.parent if not out.exists() else out)
    if not base.is_dir():
        raise DestinationError(f"cannot create the report folder {out}: {base} is a file")
    try:
        probe = tempfile.mkdtemp(prefix=".emp-kan-probe-", dir=base)
        os.rmdir(probe)
    except OSError as exc:
        raise DestinationError(
            f"cannot write the report under {base} ({exc.strerror or exc}); choose another --out"
        ) from None
    return out


def _graph_title(name: str, label: str, run: Any, logged: bool) -> str:
    """Dataset, method, edges and the formula, shortened to three digits and two lines."""
    import textwrap

    import sympy as sp

    formula = str(run.formula.expression)
    if len(formula) > 90:
        formula = str(sp.N(run.formula.expression, 3))
    lines = textwrap.wrap(f"{label}, {run.pruned.edges_alive} edges: {formula}", 90)
    if len(lines) > 2:
        lines = [lines[0], lines[1][:80] + " ... (in full: report.json)"]
    space = (
        ""
        if not logged
        else (
            " (KAN of log|y| over log|x|)" if run.log_transform.log_inputs else " (KAN of log|y|)"
        )
    )
    if candidate_source(run.candidate) != "network":  # the picture must not claim it
        lines.append("(formula found by a search on the data, not read from this network)")
    if run.groups is not None:
        described = run.groups.describe()
        groups = ", ".join(f"{n} = {g}" for n, g in described["groups"].items() if n != g)
        lines.append(
            textwrap.shorten(
                f"KAN of {described['label']}" + (f" over {groups}" * bool(groups)), 110
            )
        )
    return "\n".join([f"{name}{space}", *lines])


def _make_shareable(folder: Path) -> None:
    """Give a staged folder the permissions a plain ``mkdir`` would have (mkdtemp gives 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for item in folder.iterdir():
        item.chmod(0o666 & ~umask)


def render_figures(method: str, run: Any, problem: Any) -> dict[str, bytes]:
    """The report files drawn from one method's run, in memory: ``graph{-method}.png`` and
    ``history{-method}.png`` (no suffix for ``"emp"``), and for EMP ``graph.graphml``.

    :func:`emp_kan.discovery.discover.discover` hands each run over as soon as it is done
    (``on_run``), in the process that ran it, so the CLI draws the two methods' figures side
    by side; :func:`write_report` draws whatever it was not given.
    """
    import io

    import matplotlib.pyplot as plt
    import networkx as nx

    files: dict[str, bytes] = {}
    suffix = "" if method == "emp" else f"-{method}"
    # The KAN lives in its route's space: log|x| -> log|y| on the log route.
    logged = run.log_transform is not None
    x = problem.dataset["train_input"]
    names = [problem.columns.get(n, n) for n in problem.variables]  # a CSV's own names
    target = problem.columns.get(problem.target, problem.target)
    output = target if target not in names else f"{target} (output)"
    learned = target  # what the KAN's output stands for
    if run.groups is not None:  # the KAN learns the law between dimensionless groups
        x = run.groups.apply(problem.dataset)["train_input"]
        names = list(run.groups.names)
        output = learned = run.groups.describe()["label"]
    if run.scales is not None:  # the KAN works on the columns divided by their scales
        x = run.scales.apply({"train_input": x})["train_input"]
        names = [
            n if s == 1 else f"{n}/{s:g}" for n, s in zip(names, run.scales.inputs, strict=True)
        ]
        output = output if run.scales.label == 1 else f"{output}/{run.scales.label:g}"
    x = x.float()
    if logged:
        x = run.log_transform.apply({"x": x})["x"]
        if run.log_transform.log_inputs:
            names = [f"log|{n}|" for n in names]
        output = f"log|{learned}|"
    graph = to_networkx(
        run.pruned,
        x,
        variables=names,
        outputs=[output],
        symbolic=run.formula.graph_attributes(names),
    )
    mark_pieces(graph, run.pruned, run.structure)
    if method == "emp":
        files["graph.graphml"] = "\n".join(nx.generate_graphml(graph)).encode("utf-8")
    label = "EMP" if method == "emp" else "pykan thresholds"
    ax = plot_graph(
        graph,
        curves=edge_curves(run.pruned, x),
        title=_graph_title(problem.name, label, run, logged),
        pieces=_piece_labels(run.structure),
    )
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    files[f"graph{suffix}.png"] = buffer.getvalue()
    if method == "emp":
        fig = plot_fit(run.formula, problem, target)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        files["fit.png"] = buffer.getvalue()
    if run.pruned.history:
        fig = plot_history(run.pruned)
        fig.suptitle(f"{label}: every pruning attempt", fontsize=11)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        files[f"history{suffix}.png"] = buffer.getvalue()
    return files


def _piece_labels(structure: dict[str, Any] | None) -> list[str] | None:
    """The graph's legend of additive pieces (``"x, y: formula"``), when the pruned KAN splits
    into two or more; None otherwise."""
    if not structure or len(structure.get("pieces", [])) < 2:
        return None
    labels = []
    for piece in structure["pieces"]:
        label = ", ".join(piece["inputs"])
        formula = piece.get("formula")  # None: not solved (a candidate was at the floor)
        if formula:
            formula = _rounded(formula)
            label += f": {formula if len(formula) <= 48 else formula[:45] + '...'}"
        labels.append(label)
    return labels


def _rounded(formula: str) -> str:
    """``formula`` with its floats to 4 significant digits, for a legend."""
    try:
        expr = parse_formula(formula, max_length=100000)
    except ValueError:
        return formula
    return str(expr.xreplace({f: sp.Float(f, 4) for f in expr.atoms(sp.Float)}))


def plot_fit(formula: Any, problem: Any, target: str) -> Any:
    """How well ``formula`` fits the test rows, in the data's units: the formula against the
    measured labels (one input: both against the input) and the residuals.

    Returns a matplotlib Figure with two panels.
    """
    import matplotlib.pyplot as plt

    x = problem.dataset["test_input"].double().numpy()
    measured = problem.dataset["test_label"].double().numpy()[:, 0]
    predicted = formula.lambdify()(x)
    fig, (ax_fit, ax_res) = plt.subplots(1, 2, figsize=(10, 4))
    r2 = formula.test_r2
    if x.shape[1] == 1:
        order = np.argsort(x[:, 0])
        name = problem.columns.get(problem.variables[0], problem.variables[0])
        ax_fit.plot(x[:, 0], measured, ".", color="0.5", label="measured (test rows)")
        ax_fit.plot(x[order, 0], predicted[order], "-", color="C3", label="formula")
        ax_fit.set_xlabel(name)
        ax_fit.set_ylabel(target)
        ax_res.plot(x[:, 0], measured - predicted, ".", color="C0")
        ax_res.set_xlabel(name)
    else:
        low, high = float(np.min(measured)), float(np.max(measured))
        ax_fit.plot([low, high], [low, high], "-", color="0.7", label="formula = measured")
        ax_fit.plot(measured, predicted, ".", color="C3", label="test rows")
        ax_fit.set_xlabel(f"measured {target}")
        ax_fit.set_ylabel(f"formula's {target}")
        ax_res.plot(measured, measured - predicted, ".", color="C0")
        ax_res.set_xlabel(f"measured {target}")
    ax_fit.set_title(f"formula on the test rows (R^2 = {r2:.4g})")
    ax_fit.legend(fontsize=8)
    ax_res.axhline(0.0, color="0.7")
    ax_res.set_ylabel("measured - formula")
    ax_res.set_title("residuals")
    fig.tight_layout()
    return fig


def write_report(
    out_dir: str | os.PathLike,
    report: dict[str, Any],
    runs: dict[str, Any],
    problem: Any,
    rendered: dict[str, dict[str, bytes]] | None = None,
) -> Path:
    """Write ``report.json``, the EMP run's ``graph.png``, ``graph.graphml``, ``history.png``
    and its pruned KAN as a pykan checkpoint (``model_*``: ``kan.KAN.loadckpt(out/"model")``),
    and the threshold run's ``graph-threshold.png`` and ``history-threshold.png``.

    Parameters
    ----------
    out_dir : path
        The report folder: new, empty, or an earlier emp-kan report (replaced). Its parent is
        created if needed.
    report : dict
        From :func:`emp_kan.discovery.discover.discover`.
    runs : dict of MethodRun
        The EMP run (``"emp"``) is drawn.
    problem : Problem
    rendered : dict, optional
        Per method, its files from :func:`render_figures`, drawn earlier; methods missing
        here are drawn now. A name that is not a report file raises ValueError before
        anything is written.

    Raises
    ------
    DestinationError
        ``out_dir`` is a file, a link, or a folder holding anything but an earlier report.
    """
    foreign = sorted({name for files in (rendered or {}).values() for name in files} - REPORT_FILES)
    if foreign:
        raise ValueError(
            f"rendered files must be report files from render_figures, not {', '.join(foreign)}"
        )
    out = check_destination(out_dir)
    created = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    placed = _Placed()
    try:
        _fill(staging, report, runs, problem, rendered)
        check_destination(out)  # again: the folder may have changed during the run
        _put_in_place(staging, out, placed)
    except BaseException:
        _undo(staging, out, placed, created)
        raise
    if placed.old is not None:
        _remove_earlier_report(placed.old)
    return out


@dataclass
class _Placed:
    """What :func:`_put_in_place` has done so far, for :func:`_undo`."""

    moved: list[Path] = field(default_factory=list)  # files linked into the user's folder
    old: Path | None = None  # an earlier report set aside


def _fill(
    staging: Path,
    report: dict[str, Any],
    runs: dict[str, Any],
    problem: Any,
    rendered: dict[str, dict[str, bytes]] | None,
) -> None:
    """Write every report file into the private ``staging`` folder."""

    for method, run in runs.items():
        files = (rendered or {}).get(method) or render_figures(method, run, problem)
        for name, content in files.items():
            (staging / name).write_bytes(content)
        if method == "emp":
            adapter.save_checkpoint(run.pruned.model, staging / "model")
    (staging / "report.json").write_text(
        json.dumps(report, indent=2, allow_nan=False, default=str), encoding="utf-8"
    )
    (staging / MARKER).write_text(
        json.dumps({"written_by": "emp-kan", "version": __version__}) + "\n", encoding="utf-8"
    )
    _make_shareable(staging)


def _put_in_place(staging: Path, out: Path, placed: _Placed) -> None:
    """Move the staged report to ``out``, recording each step in ``placed``."""
    if out.is_dir() and not any(out.iterdir()):
        # The user's empty folder: fill it, file by file, never replacing the folder.
        for item in sorted(staging.iterdir()):
            os.link(item, out / item.name)  # fails rather than overwrite
            placed.moved.append(out / item.name)
        shutil.rmtree(staging)
        return
    if out.exists():
        # An earlier report of ours: set it aside, put the new one in, then delete it.
        placed.old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, placed.old)
    os.rename(staging, out)  # out is missing here: one rename puts the whole report


def _undo(staging: Path, out: Path, placed: _Placed, created: list[Path]) -> None:
    """After a failure: remove what this call wrote and put an earlier report back."""
    shutil.rmtree(staging, ignore_errors=True)  # our own temporary folder
    for path in placed.moved:
        path.unlink(missing_ok=True)
    if placed.old is not None and not out.exists():
        os.rename(placed.old, out)  # put the earlier report back
        placed.old = None
    for folder in created:  # parents this call made, if they stayed empty
        try:
            folder.rmdir()
        except OSError:
            break


def _remove_earlier_report(folder: Path) -> None:
    """Delete an earlier report set aside: only the files a report holds, then the folder."""
    for name in REPORT_FILES:
        path = folder / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    try:
        folder.rmdir()
    except OSError:  # something else appeared in it: leave it for the user to see
        log.warning("left %s in place: it holds files emp-kan did not write", folder)
