"""Write a discovery report folder, all at once or not at all.

Everything is written into a fresh hidden folder beside the destination and moved into place
with one rename, so a failure or Ctrl-C leaves no partial folder behind; a previous report at
the destination is replaced only after the new one is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def write_report(out_dir: str | os.PathLike, report: dict[str, Any], runs: dict[str, Any],
                 problem: Any) -> Path:  # fmt: skip
    """Write ``report.json``, ``graph.png``, ``graph.graphml`` and ``history.png``.

    Parameters
    ----------
    out_dir : path
        The report folder; its parent is created if needed.
    report : dict
        From :func:`emp_kan.pipeline.discover`.
    runs : dict of MethodRun
        The EMP run (``"emp"``) is drawn.
    problem : Problem
    """
    import matplotlib.pyplot as plt

    from emp_kan.graph import edge_curves, to_networkx, write_graph
    from emp_kan.plotting import plot_graph, plot_history

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        emp = runs["emp"]
        x = problem.dataset["train_input"]
        graph = to_networkx(emp.pruned, x, variables=problem.variables, outputs=[problem.target],
                            symbolic=emp.formula.graph_attributes())  # fmt: skip
        write_graph(graph, staging / "graph.graphml")
        title = report["formula"] if len(report["formula"]) <= 90 else "formula: see report.json"
        ax = plot_graph(graph, curves=edge_curves(emp.pruned, x), title=f"{problem.name}: {title}")
        ax.figure.savefig(staging / "graph.png", dpi=90, bbox_inches="tight")
        plt.close(ax.figure)
        if emp.pruned.history:
            fig = plot_history(emp.pruned)
            fig.savefig(staging / "history.png", dpi=80, bbox_inches="tight")
            plt.close(fig)
        (staging / "report.json").write_text(
            json.dumps(report, indent=2, allow_nan=False, default=str), encoding="utf-8"
        )
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
