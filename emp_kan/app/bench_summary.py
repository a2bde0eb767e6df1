"""The bench's summary: aggregates per method, EMP's wins and losses against each baseline,
and the summary.md and summary.png of a results folder (written atomically)."""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

from emp_kan._runtime.io import atomic_write_text, staged_file

__all__ = ["METHODS", "summarise", "write_summary"]


def _median(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


def _fmt(value, spec=".2e"):
    return "-" if value is None else format(value, spec)


def _compare(emp_row: dict, other: dict) -> str:
    """'win', 'loss' or 'tie' of EMP against another method on one (equation, seed)."""
    e_exact, o_exact = bool(emp_row.get("exact")), bool(other.get("exact"))
    if e_exact != o_exact:
        return "win" if e_exact else "loss"
    e_edges, o_edges = emp_row.get("edges"), other.get("edges")
    e_rmse, o_rmse = emp_row.get("test_rmse"), other.get("test_rmse")
    if other.get("method") in ("operon", "rils") and "error" not in other:
        # No graph to count: the same exactness is settled by the formula's test RMSE alone.
        if e_rmse is None or o_rmse is None:
            return "tie" if e_rmse is o_rmse else ("loss" if e_rmse is None else "win")
        return "win" if o_rmse > 2 * e_rmse else "loss" if e_rmse > 2 * o_rmse else "tie"
    if e_rmse is None or e_edges is None:
        return "loss" if o_rmse is not None else "tie"
    if o_rmse is None or o_edges is None:
        return "win"
    if e_edges < o_edges and e_rmse <= 2 * o_rmse:
        return "win"
    if e_edges > o_edges or e_rmse > 2 * o_rmse:
        return "loss"
    return "tie"


def summarise(rows: list[dict]) -> dict:
    """Aggregates per method and EMP's wins and losses (see docs/benchmarks.md)."""
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    agg = {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        ok = [r for r in mine if "error" not in r]
        agg[m] = {
            "tasks": len(mine),
            "failed": len(mine) - len(ok),
            "exact": sum(bool(r.get("exact")) for r in ok),
            "exact_rate": sum(bool(r.get("exact")) for r in ok) / len(mine) if mine else 0.0,
            "accurate_rate": (
                sum((r.get("test_r2") or 0.0) > 0.999 for r in ok) / len(mine) if mine else 0.0
            ),
            "median_edges": _median([r.get("edges") for r in ok]),
            "median_test_rmse": _median([r.get("test_rmse") for r in ok]),
            "median_seconds": _median([r["seconds"] for r in mine]),
            "rejected_attempts": sum(int(r.get("rejected_attempts") or 0) for r in ok),
            "total_seconds": sum(r["seconds"] for r in mine),
        }
    versus = {}
    by_key = {(r["equation"], r["seed"], r.get("noise", 0.0), r["method"]): r for r in rows}
    for other in (m for m in methods if m != "emp"):
        tally = {"win": 0, "loss": 0, "tie": 0}
        for (eq, seed, noise, method), r in by_key.items():
            if method == "emp" and (eq, seed, noise, other) in by_key:
                tally[_compare(r, by_key[(eq, seed, noise, other)])] += 1
        versus[other] = tally
    levels = sorted({float(r.get("noise", 0.0)) for r in rows})
    by_noise = {
        m: {
            level: (
                sum(
                    bool(r.get("exact")) and "error" not in r
                    for r in rows
                    if r["method"] == m and float(r.get("noise", 0.0)) == level
                ),
                sum(1 for r in rows if r["method"] == m and float(r.get("noise", 0.0)) == level),
            )
            for level in levels
        }
        for m in methods
    }
    return {"methods": agg, "emp_versus": versus, "by_noise": by_noise}


def write_summary(rows: list[dict], out_dir: str | os.PathLike) -> None:
    """``summary.md`` (per-equation table and aggregates) and ``summary.png``, atomically."""
    out = Path(out_dir)
    summary = summarise(rows)
    methods = list(summary["methods"])
    lines = [
        "# emp-kan bench",
        "",
        "Per equation (median over seeds; exact = seeds with an exact recovery):",
        "",
    ]
    header = "| eq | truth |" + "".join(
        f" {m} edges | {m} spline RMSE | {m} formula RMSE | {m} exact | {m} s |" for m in methods
    )
    lines += [header, "|" + "---|" * (2 + 5 * len(methods))]
    for eq in sorted({r["equation"] for r in rows}):
        mine = [r for r in rows if r["equation"] == eq]
        truth = next((r.get("truth") for r in mine if r.get("truth")), "-")
        cells = [f"| {eq} | `{truth}` |"]
        for m in methods:
            rs = [r for r in mine if r["method"] == m]
            ok = [r for r in rs if "error" not in r]
            exact = f"{sum(bool(r.get('exact')) for r in ok)}/{len(rs)}" if rs else "-"
            if rs and not ok:
                exact += " (failed)"
            cells.append(
                f" {_fmt(_median([r.get('edges') for r in ok]), '.0f')} |"
                f" {_fmt(_median([r.get('spline_test_rmse') for r in ok]))} |"
                f" {_fmt(_median([r.get('test_rmse') for r in ok]))} | {exact} |"
                f" {_fmt(_median([r['seconds'] for r in rs]), '.0f')} |"
            )
        lines.append("".join(cells))
    lines += [
        "",
        "## Aggregates",
        "",
        "| method | tasks | failed | exact | exact rate | test R^2 > 0.999 | median edges "
        "| median formula RMSE | median s | total s | rejected attempts |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, a in summary["methods"].items():
        rejected = a["rejected_attempts"] if m in ("emp", "threshold") else "-"
        lines.append(
            f"| {m} | {a['tasks']} | {a['failed']} | {a['exact']} | "
            f"{100 * a['exact_rate']:.1f}% | {100 * a['accurate_rate']:.1f}% | "
            f"{_fmt(a['median_edges'], '.1f')} | "
            f"{_fmt(a['median_test_rmse'])} | {_fmt(a['median_seconds'], '.1f')} | "
            f"{a['total_seconds']:.0f} | {rejected} |"
        )
    levels = sorted({level for counts in summary["by_noise"].values() for level in counts})
    if len(levels) > 1:
        lines += [
            "",
            "## Exact recoveries by noise level",
            "",
            "| method | " + " | ".join(f"noise {level:g}" for level in levels) + " |",
            "|---|" + "---|" * len(levels),
        ]
        for m, counts in summary["by_noise"].items():
            cells = " | ".join(f"{counts[level][0]}/{counts[level][1]}" for level in levels)
            lines.append(f"| {m} | {cells} |")
    if summary["emp_versus"]:
        lines += [
            "",
            "EMP against each baseline, per (equation, seed): a win is an exact "
            "recovery the other missed, or (same exactness) fewer edges at a formula RMSE "
            "at most 2x the other's; a loss is the reverse, more edges, or an RMSE above "
            "2x.",
            "",
        ]
        for other, t in summary["emp_versus"].items():
            lines.append(f"- EMP vs {other}: {t['win']} wins, {t['loss']} losses, {t['tie']} ties")
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    _plot_summary(summary, rows, out / "summary.png")


def _plot_summary(summary: dict, rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    methods = list(summary["methods"])
    agg = summary["methods"]
    colors = {
        "emp": "#1f4e79",
        "threshold": "#8c8c8c",
        "pykan": "#b3541e",
        "operon": "#4f7f3a",
        "rils": "#7a4f9a",
    }
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    ax = axes[0]
    ax.bar(methods, [agg[m]["exact_rate"] for m in methods], color=[colors[m] for m in methods])
    ax.set_title("exact recovery rate", fontsize=10)
    ax.set_ylim(0, 1)
    ax = axes[1]
    seconds = [[r["seconds"] for r in rows if r["method"] == m] for m in methods]
    ax.boxplot(seconds, tick_labels=methods, showfliers=True)
    ax.set_yscale("log")
    ax.set_title("seconds per task (distribution)", fontsize=10)
    ax = axes[2]
    ax.bar(
        methods, [agg[m]["median_edges"] or 0 for m in methods], color=[colors[m] for m in methods]
    )
    ax.set_title("median edges kept (operon, rils: no graph)", fontsize=10)
    fig.tight_layout()
    try:
        with staged_file(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=80)
    finally:
        plt.close(fig)


METHODS = ("emp", "threshold", "pykan", "operon", "rils")
