"""``emp-kan bench``: methods x Feynman equations x seeds, on Dask, resumable.

Every (equation, method, seed) is one task, run on a Dask distributed cluster: a local one by
default (one single-threaded worker process per core) or an existing one given by its scheduler
address. Each finished task is appended to ``results.jsonl`` at once (flushed and fsynced), so a
killed bench loses nothing it finished; started again, it skips the finished tasks, and a torn
last line (a write cut short by the kill) is ignored and overwritten.

Methods:

* ``emp``: train, EMP rounds (edges and nodes, per layer, beta 1), our symbolic stage;
* ``threshold``: the same training (same seed: the same trained model), pykan's threshold rule
  in the same round loop, our symbolic stage: this isolates the pruning rule;
* ``pykan``: pykan's tutorial workflow end to end (fit with lamb, prune, fit, refine(10), fit,
  auto_symbolic, fit, symbolic_formula): the whole-pipeline comparison;
* ``operon``: pyoperon's genetic programming on the same fit rows, same test rows, same
  exactness check (:mod:`emp_kan.baselines.operon`; the optional extra ``emp-kan[sr]``);
* ``rils``: RILS-ROLS (iterated local search and least squares) the same way
  (:mod:`emp_kan.baselines.rils`; it builds from source, see there).

``--noise LEVELS`` (e.g. ``0,0.001,0.01,0.1``, SRBench's levels) runs every task at each level:
seeded Gaussian noise of the level times the label standard deviation is added to the training
(and so the validation) labels of every method alike; the test labels stay clean.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, field, make_dataclass, replace
from pathlib import Path
from typing import Any

from emp_kan._runtime.checks import check_whole
from emp_kan.app.bench_summary import METHODS, write_summary
from emp_kan.baselines import pykan_workflow
from emp_kan.baselines.operon import require_operon, run_operon
from emp_kan.baselines.rils import require_rils, rils_workflow
from emp_kan.data import feynman
from emp_kan.data.feynman_units import feynman_units
from emp_kan.data.problems import feynman_problem, with_label_noise, with_units
from emp_kan.discovery.config import DiscoverConfig, checked_settings, settings_for
from emp_kan.discovery.discover import method_runs
from emp_kan.kan import adapter
from emp_kan.symbolic.expression import evaluate_formula
from emp_kan.symbolic.library import DEFAULT_LIBRARY
from emp_kan.symbolic.recovery import is_exact_recovery

log = logging.getLogger("emp_kan")

#: The files a bench folder holds.
BENCH_FILES = frozenset({"results.jsonl", "summary.md", "summary.png"})

__all__ = [
    "BenchSettings",
    "check_out_dir",
    "check_request",
    "parse_levels",
    "parse_numbers",
    "read_results",
    "run_bench",
    "run_task",
    "settings_hash",
]


def _check_bench_settings(self: Any) -> Any:
    """The settings in their canonical types, or ValueError naming the first that cannot
    work (the settings table's checks, and at least 10 rows)."""
    checked = checked_settings(self, settings_for("bench"))
    if not isinstance(self.units, bool):
        raise ValueError(f"units must be True or False, got {self.units!r}")
    return replace(self, samples=check_whole("samples", self.samples, low=10), **checked)


#: Budget of every task (the same for every method): the rows per task and the settings the
#: table marks for the bench (:func:`emp_kan.discovery.config.settings_for`).
BenchSettings = make_dataclass(
    "BenchSettings",
    [("samples", int, field(default=500)), ("units", bool, field(default=False))]
    + [(name, Any, field(default=default)) for name, (default, _) in settings_for("bench").items()],
    namespace={
        "check": _check_bench_settings,
        "__doc__": "Budget of every task (the same for every method): ``samples`` "
        "train and test rows, and the discovery settings marked for the "
        "bench in :mod:`emp_kan.discovery.config`.",
    },
)
BenchSettings.__module__ = __name__  # where pickle finds it (make_dataclass sets another)


def parse_numbers(text: str, what: str) -> list[int]:
    """``"1,2,4-7"`` -> ``[1, 2, 4, 5, 6, 7]`` (order kept, duplicates dropped)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                values = range(lo, hi + 1)
            else:
                values = [int(part)]
        except ValueError:
            raise ValueError(f"cannot read {what} {part!r}; write e.g. 1,2,4-12") from None
        out += [v for v in values if v not in out]
    if not out:
        raise ValueError(f"no {what} given")
    return out


def check_request(equations: Sequence[int], methods: Sequence[str]) -> None:
    """Raise ValueError for unknown methods and for equations pykan cannot serve."""

    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"methods must be among {', '.join(METHODS)}; got {', '.join(methods)}")
    if "operon" in methods:
        require_operon()
    if "rils" in methods:
        require_rils()
    for eq in equations:
        if eq in feynman.BROKEN_FEYNMAN:
            raise ValueError(f"{feynman.BROKEN_FEYNMAN[eq]}; leave it out of --equations")
        if not 1 <= eq <= 120:
            raise ValueError(f"Feynman equations are numbered 1-120, got {eq}")


def task_key(equation: int, method: str, seed: int, noise: float = 0.0) -> str:
    return f"{equation}:{method}:{seed}:{noise:g}"


def parse_levels(text: str) -> list[float]:
    """Noise levels from ``"0,0.001,0.01"``: finite shares of the label std, at least 0, in the
    order given, each once; ValueError names the first that is not one."""
    levels: list[float] = []
    for part in (p.strip() for p in str(text).split(",")):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"noise must be a finite number >= 0 (a share of the label std), got {part!r}; "
                "e.g. --noise 0,0.01"
            )
        if value not in levels:
            levels.append(value)
    return levels


def settings_hash(settings: BenchSettings) -> str:
    """A short fingerprint of the budget; every row carries the one it was run with."""
    text = json.dumps(asdict(settings), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def check_out_dir(out_dir: str | os.PathLike, settings: BenchSettings) -> None:
    """Raise ValueError unless ``out_dir`` is new, empty, or a bench run of the same settings.

    A folder holding anything but an earlier bench is refused (the bench writes summary.md
    there); results of other settings are refused rather than mixed into one table.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder for the results")
    if not out.exists() or not any(out.iterdir()):
        return
    results = out / "results.jsonl"
    if not results.is_file():
        raise ValueError(
            f"--out {out} already holds files and no bench results.jsonl; give a "
            "new or empty folder"
        )
    # A killed summary write leaves a hidden temporary file (".summary.md.XXXX") behind.
    foreign = sorted(
        p.name
        for p in out.iterdir()
        if p.name not in BENCH_FILES and not p.name.startswith((".summary.md.", ".summary.png."))
    )
    if foreign:
        raise ValueError(
            f"--out {out} holds files the bench did not write "
            f"({', '.join(foreign[:3])}); give a new or empty folder"
        )
    want = settings_hash(settings)
    other = {r.get("settings_hash") for r in read_results(results)} - {want}
    if other:
        raise ValueError(
            f"{results} holds results of other settings (--samples, --steps, --round-steps, "
            f"--rounds, --route, --all-routes, ...); rerun with those settings to "
            f"resume, or give another --out"
        )


def _pykan_workflow(problem, settings: BenchSettings, seed: int) -> dict:
    data, names = problem.dataset, problem.variables
    x = data["train_input"]
    model = adapter.make_kan([len(names), *settings.hidden, 1], grid=settings.grid, k=3, seed=seed)
    adapter.fit(model, data, settings.steps, settings.lamb, seed, engine="pykan")
    model = pykan_workflow.pykan_prune(model, x)
    adapter.fit(model, data, settings.round_steps, 0.0, seed + 1, engine="pykan")
    model = pykan_workflow.refine(model, 10, x)
    adapter.fit(model, data, settings.round_steps, 0.0, seed + 2, engine="pykan")
    spline_rmse = adapter.rmse(model, data["test_input"], data["test_label"])
    edges = sum(int(m.sum()) for m in adapter.get_edge_masks(model))
    adapter.forward_pass(model, x)
    pykan_workflow.auto_symbolic(model, [f for f in DEFAULT_LIBRARY])
    adapter.fit(model, data, settings.round_steps, 0.0, seed + 3, update_grid=False, engine="pykan")
    expr = pykan_workflow.pykan_formula(model, names)
    rmse, r2 = evaluate_formula(expr, names, data["test_input"], data["test_label"])
    exact = bool(
        problem.truth is not None
        and is_exact_recovery(expr, problem.truth, names, test_r2=r2, ranges=problem.ranges)
    )
    return {
        "formula": str(expr),
        "test_rmse": rmse,
        "test_r2": r2,
        "exact": exact,
        "spline_test_rmse": spline_rmse,
        "edges": edges,
    }


def _operon_workflow(problem, seed: int) -> dict:
    run = run_operon(problem, seed)
    return {
        "formula": str(run.formula),
        "raw_formula": run.raw,
        "test_rmse": run.test_rmse,
        "test_r2": run.test_r2,
        "exact": bool(run.exact),
        "spline_test_rmse": None,
        "edges": None,
        "complexity": run.complexity,
    }


def _our_workflow(method: str, problem, settings: BenchSettings, seed: int) -> dict:
    # noise is added to the problem's labels by run_task
    bench_settings = {name: getattr(settings, name) for name in settings_for("bench")}
    # One worker per CPU runs one task already: the methods run one after the other.
    config = DiscoverConfig(**bench_settings, seed=seed, workers=1).check()
    run = method_runs(problem, (method,), config)[0][method]  # as discover does
    return {
        "formula": str(run.formula.expression),
        "test_rmse": run.formula.test_rmse,
        "test_r2": run.formula.test_r2,
        "exact": bool(run.exact),
        "spline_test_rmse": run.pruned.final_test_rmse,
        "edges": run.pruned.edges_alive,
        "rejected_attempts": run.pruned.rejected_attempts,
        "stop_reason": run.pruned.stop_reason,
        "candidate": run.candidate,
        "candidates": run.front,
    }


def run_task(equation: int, method: str, seed: int, settings: dict, noise: float = 0.0) -> dict:
    """One bench task at one noise level; never raises: a failure becomes a row with
    ``error``."""
    import torch

    torch.set_num_threads(1)  # one single-threaded worker per core
    bench = BenchSettings(**settings)
    row: dict[str, Any] = {
        "key": task_key(equation, method, seed, noise),
        "equation": equation,
        "method": method,
        "seed": seed,
        "noise": noise,
        "settings_hash": settings_hash(bench),
    }
    start = time.perf_counter()
    try:
        problem = with_label_noise(feynman_problem(equation, bench.samples, seed), noise, seed)
        if bench.units:  # pykan's workflow, operon and rils do not use them
            problem = with_units(problem, feynman_units(equation, problem.target))
        row["truth"] = str(problem.truth)
        if method == "pykan":
            row.update(_pykan_workflow(problem, bench, seed))
        elif method == "operon":
            row.update(_operon_workflow(problem, seed))
        elif method == "rils":
            found = rils_workflow(problem, seed)
            row.update(found, spline_test_rmse=None, edges=None)
        else:
            row.update(_our_workflow(method, problem, bench, seed))
    except Exception as exc:  # recorded, so the bench goes on and the summary shows it
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=5)
    row["seconds"] = time.perf_counter() - start
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


def read_results(path: Path) -> list[dict]:
    """The finished rows of ``results.jsonl``; an unreadable (torn) last line is dropped."""
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if k < len(lines) - 1 and any(rest.strip() for rest in lines[k + 1 :]):
                raise ValueError(f"{path}: line {k + 1} is not JSON; fix or remove it") from None
            log.warning("ignoring a torn last line in %s", path)
    return rows


def _repair_tail(path: Path) -> None:
    """Cut a torn last line, so that the next append starts on a clean line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with path.open("r+b") as fh:
        fh.truncate(cut)


def _append(path: Path, row: dict) -> None:
    line = json.dumps(row, allow_nan=False) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def run_bench(
    equations: Sequence[int],
    methods: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | os.PathLike,
    settings: BenchSettings | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    noise_levels: Sequence[float] = (0.0,),
) -> list[dict]:
    """Run every missing (equation, method, seed, noise level) task; returns all rows of
    ``results.jsonl``."""
    from tqdm.auto import tqdm

    check_request(equations, methods)
    settings = settings or BenchSettings()
    out = Path(out_dir)
    check_out_dir(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    _repair_tail(results)
    done = {r["key"] for r in read_results(results)}
    todo = [
        (e, m, s, level)
        for level in noise_levels
        for e in equations
        for s in seeds
        for m in methods
        if task_key(e, m, s, level) not in done
    ]
    log.info("%d tasks done before, %d to run", len(done), len(todo))
    if todo:
        _run_on_dask(todo, settings, results, scheduler, progress, tqdm)
    rows = read_results(results)
    write_summary(rows, out)
    return rows


def _run_on_dask(todo, settings, results, scheduler, progress, tqdm) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    try:
        futures = [
            client.submit(
                run_task,
                e,
                m,
                s,
                asdict(settings),
                level,
                pure=False,
                key=f"emp-kan-{task_key(e, m, s, level)}-{time.time_ns()}",
            )
            for e, m, s, level in todo
        ]
        bar = tqdm(total=len(futures), desc="bench tasks", disable=not progress)
        for future in as_completed(futures):
            _append(results, future.result())
            bar.update(1)
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --- summary ------------------------------------------------------------------------------
