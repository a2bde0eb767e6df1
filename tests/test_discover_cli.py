"""`emp-kan discover` and `emp-kan bench`: bad input, a full small run, atomic reports, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emp_kan._runtime.forked import usable_workers
from emp_kan.app.cli import main
from emp_kan.data.formula_parse import parse_formula

TINY = ["--samples", "40", "--steps", "3", "--round-steps", "2", "--rounds", "1", "--no-progress"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["discover", "--feynman", "20"], "u*v where its formula says u+v"),
        (["discover", "--feynman", "113"], "swaps x and y"),
        (["discover", "--feynman", "0"], "numbered 1-120"),
        (["discover", "--formula", "x*y"], "--formula needs --ranges"),
        (["discover", "--formula", "x*(y", "--ranges", "x=0:1,y=0:1"], "cannot read the formula"),
        (["discover", "--formula", "x*y", "--ranges", "x=0:1"], "no range given for y"),
        (["discover", "--formula", "x", "--ranges", "x=1:0"], "LOW < HIGH"),
        (["discover", "--formula", "x", "--ranges", "x=0-1"], "write NAME=LOW:HIGH"),
        (["discover", "--feynman", "1", "--formula", "x", "--ranges", "x=0:1"], "one data source"),
        (["discover", "--csv", "nope.csv", "--target", "y"], "no such CSV file"),
        (["discover", "--csv", "data.csv"], "--csv needs --target"),
        (["discover", "--library", "x,bessel"], "unknown library function"),
        (["discover", "--hidden", "5,0"], "hidden must be at least 1 positive whole number"),
        (["discover", "--hidden", "5,x"], "--hidden: expected comma-separated values"),
        (["discover", "--edge-score", "magic"], "--edge-score: invalid choice: 'magic'"),
        (["discover", "--beta", "0"], "beta must be a positive finite number"),
        (["discover", "--prune", "splines"], "invalid choice"),
        (["discover", "--formula", "foo(x)", "--ranges", "x=0:1"], "unknown function 'foo'"),
        (
            [
                "discover",
                "--formula",
                "__import__('os').system('touch PWNED')",
                "--ranges",
                "x=0:1",
            ],
            "cannot read the formula",
        ),
        (["discover", "--formula", "x.real", "--ranges", "x=0:1"], "attribute access"),
        (["discover", "--tol", "-1"], "tol must be a finite number >= 0"),
        (["discover", "--lamb", "nan"], "lamb must be a finite number >= 0"),
        (["discover", "--noise", "-0.1"], "noise must be a finite number >= 0"),
        (["discover", "--compare", "gplearn"], "--compare takes threshold, operon"),
        (["discover", "--compare", "none,operon"], "--compare takes threshold, operon"),
        (["bench", "--equations", "1", "--noise", "nan", "--out", "b"], "noise must be"),
        (["discover", "--out", "/proc/emp-kan-x"], "cannot write the report"),
        (["bench", "--equations", "1,20", "--out", "b"], "entry 20"),
        (["bench", "--equations", "1", "--methods", "magic", "--out", "b"], "must be among"),
        (["bench", "--equations", "x", "--out", "b"], "cannot read equations"),
    ],
)
def test_bad_usage_is_one_line_exit_2_and_writes_nothing(
    argv, message, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("emp-kan: error: ")
    assert message in err
    assert os.listdir(tmp_path) == []


def test_csv_with_bad_cells_names_the_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = ["a,b,y"] + [f"{i},{i * 2},{i * 3}" for i in range(12)] + ["1,x,2", "3,,4"]
    Path("data.csv").write_text("\n".join(rows) + "\n")
    assert main(["discover", "--csv", "data.csv", "--target", "y"]) == 2
    assert "column 'b' holds 'x' on line 14" in capsys.readouterr().err
    Path("data.csv").write_text("\n".join(rows[:-2] + ["3,,4"]) + "\n")
    assert main(["discover", "--csv", "data.csv", "--target", "y"]) == 2
    err = capsys.readouterr().err
    assert "missing cells (columns 'b'; line(s) 14)" in err and "--dropna" in err


def test_small_discover_writes_a_complete_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [
        "discover",
        "--formula",
        "x*y + 1",
        "--ranges",
        "x=-1:1,y=-1:1",
        "--hidden",
        "3",
        "--compare",
        "threshold,operon",
        "--out",
        "out",
        *TINY,
    ]
    assert main(argv) == 0
    assert os.listdir(tmp_path) == ["out"]
    assert sorted(os.listdir("out")) == [
        ".emp-kan-report",
        "fit.png",
        "graph-threshold.png",
        "graph.graphml",
        "graph.png",
        "history-threshold.png",
        "history.png",
        "model_cache_data",
        "model_config.yml",
        "model_state",
        "report.json",
    ]
    report = json.loads(Path("out/report.json").read_text())
    # Every key a user finds in report.json is explained in docs/report.md.
    guide = (Path(__file__).parents[1] / "docs" / "report.md").read_text()
    undocumented = [
        k
        for k in (*report, *report["rounds"][0], *report["candidates"][0], *report["operon"])
        if f"`{k}`" not in guide
    ]
    assert not undocumented, f"docs/report.md does not explain {undocumented}"
    for key in (
        "formula",
        "variables",
        "truth",
        "exact",
        "test_rmse",
        "test_r2",
        "spline_test_rmse",
        "edges",
        "nodes",
        "rounds",
        "timings",
        "seed",
        "versions",
        "baseline",
    ):
        assert key in report
    parse_formula(report["formula"])  # our own output reads back through the safe parser
    assert report["variables"] == ["x", "y"] and report["truth"] == "x*y + 1"
    assert set(report["timings"]) == {"train", "prune", "symbolic", "total"}
    # the [2, 3, 1] KAN, or the larger one the capacity steps kept
    kept = [step["widths"] for step in report["capacity"] if step["kept"]]
    assert report["edges"]["initial"] in {
        sum(a * b for a, b in zip(w, w[1:], strict=False)) for w in [[2, 3, 1], *kept[-1:]]
    }
    assert report["baseline"]["method"] == "threshold"
    assert set(report["baseline"]) >= {"formula", "exact", "test_rmse", "edges", "timings"}
    layer = report["rounds"][0]["layers"][0]
    assert {"alive_before", "n_eff", "kept", "preserved_mass", "mass_bound"} <= set(layer)
    assert report["operon"]["method"] == "operon" and report["operon"]["budget"]["n_threads"] == 1
    assert report["operon"]["exact"] is True  # x*y + 1 is within Operon's reach
    assert report["noise"] == 0.0
    out = capsys.readouterr().out
    assert "formula" in out and "pykan thresholds" in out and "report: out" in out
    assert "Operon" in out
    assert any(line.startswith("routes") and "none" in line for line in out.splitlines())
    # Run again into the same folder: an earlier report of ours is replaced, nothing else kept.
    Path("out/report.json").write_text("{}")
    assert main(argv) == 0
    assert json.loads(Path("out/report.json").read_text())["variables"] == ["x", "y"]
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert oct(os.stat("out").st_mode & 0o077) != "0o0"  # shareable, not owner-only


def test_a_failed_run_leaves_no_partial_folder(tmp_path, monkeypatch):
    import matplotlib.figure

    monkeypatch.chdir(tmp_path)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", interrupt)
    argv = [
        "discover",
        "--formula",
        "2*x",
        "--ranges",
        "x=-1:1",
        "--hidden",
        "2",
        "--compare",
        "none",
        "--out",
        "out",
        *TINY,
    ]
    assert main(argv) == 130
    assert os.listdir(tmp_path) == []


def _bench(out: Path, equations: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "emp_kan.app.cli",
        "bench",
        "--equations",
        equations,
        "--methods",
        "emp,threshold",
        "--out",
        str(out),
        "--samples",
        "30",
        "--steps",
        "2",
        "--round-steps",
        "1",
        "--rounds",
        "1",
        "--no-progress",
    ]


def test_killed_bench_resumes_with_every_task_exactly_once(tmp_path):
    out = tmp_path / "bench"
    results = out / "results.jsonl"
    proc = subprocess.Popen(
        _bench(out, "16,25"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the bench and its Dask workers
    proc.wait(timeout=30)
    lines_before = results.read_text().count("\n")
    assert lines_before >= 1
    with results.open("a") as fh:
        fh.write('{"key": "16:emp:0:0", "equation": 16, "meth')  # a torn write
    done = subprocess.run(
        _bench(out, "16,25"), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    keys = [r["key"] for r in rows]
    assert sorted(keys) == sorted(
        ["16:emp:0:0", "16:threshold:0:0", "25:emp:0:0", "25:threshold:0:0"]
    )
    assert (out / "summary.md").exists() and (out / "summary.png").exists()
    assert "EMP vs threshold" in (out / "summary.md").read_text()
    assert sorted(os.listdir(out)) == ["results.jsonl", "summary.md", "summary.png"]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("kind", ["user folder", "file", "report with a user file"])
def test_out_never_touches_what_is_not_an_emp_kan_report(kind, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if kind == "file":
        Path("out").write_bytes(b"my thesis\n")
    else:
        Path("out").mkdir()
        Path("out/notes.txt").write_bytes(b"do not lose me\n")
        if kind == "report with a user file":
            Path("out/.emp-kan-report").write_text("{}")
            Path("out/report.json").write_text("{}")
    before = _snapshot(tmp_path)
    argv = ["discover", "--formula", "2*x", "--ranges", "x=-1:1", "--out", "out", *TINY]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out" in err and ("folder" in err or "file" in err)
    assert _snapshot(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_csv_with_a_repeated_column_name_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = ["a,a,y"] + [f"{i},{i * 2},{i * 3}" for i in range(12)]
    Path("data.csv").write_text("\n".join(rows) + "\n")
    assert main(["discover", "--csv", "data.csv", "--target", "y"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'a' more than once" in err
    assert os.listdir(tmp_path) == ["data.csv"]


def test_verbose_shows_the_traceback_of_an_unexpected_failure(tmp_path, monkeypatch, capsys):
    from emp_kan.discovery import discover

    monkeypatch.chdir(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(discover, "discover", broken)
    argv = ["discover", "--formula", "2*x", "--ranges", "x=-1:1", *TINY]
    assert main(argv) == 1
    quiet = capsys.readouterr().err
    assert "Traceback" not in quiet and "simulated bug" in quiet
    assert main(["--verbose", *argv]) == 1
    loud = capsys.readouterr().err
    assert "Traceback" in loud and "RuntimeError: simulated bug" in loud
    assert os.listdir(tmp_path) == []


def test_bench_refuses_to_mix_settings(tmp_path, capsys):
    from emp_kan.app.bench import BenchSettings, settings_hash

    out = tmp_path / "b"
    out.mkdir()
    row = {
        "key": "1:emp:0:0",
        "equation": 1,
        "method": "emp",
        "seed": 0,
        "seconds": 1.0,
        "settings_hash": settings_hash(BenchSettings(samples=500, steps=50)),
    }
    (out / "results.jsonl").write_text(json.dumps(row) + "\n")
    before = _snapshot(out)
    argv = ["bench", "--equations", "1", "--out", str(out), "--steps", "7", "--no-progress"]
    assert main(argv) == 2
    assert "other settings" in capsys.readouterr().err
    assert _snapshot(out) == before
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "summary.md").write_text("my own summary")
    argv = ["bench", "--equations", "1", "--out", str(tmp_path / "mine"), "--no-progress"]
    assert main(argv) == 2
    assert "no bench results.jsonl" in capsys.readouterr().err


def test_an_empty_user_folder_is_filled_not_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("out").mkdir(mode=0o750)
    inode = os.stat("out").st_ino
    argv = [
        "discover",
        "--formula",
        "2*x",
        "--ranges",
        "x=-1:1",
        "--hidden",
        "2",
        "--compare",
        "none",
        "--out",
        "out",
        *TINY,
    ]
    assert main(argv) == 0
    assert os.stat("out").st_ino == inode and (os.stat("out").st_mode & 0o777) == 0o750
    assert "report.json" in os.listdir("out") and sorted(os.listdir(tmp_path)) == ["out"]


def test_a_report_name_that_is_not_a_file_is_not_ours(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("out/graph.png").mkdir(parents=True)  # a folder where a report has a file
    Path("out/.emp-kan-report").write_text("{}")
    Path("out/graph.png/mine.txt").write_text("keep")
    argv = ["discover", "--formula", "2*x", "--ranges", "x=-1:1", "--out", "out", *TINY]
    assert main(argv) == 2
    assert Path("out/graph.png/mine.txt").read_text() == "keep"


def test_bench_refuses_a_results_folder_holding_other_files(tmp_path, capsys):
    out = tmp_path / "b"
    out.mkdir()
    (out / "results.jsonl").write_text("")
    (out / "notes.txt").write_text("mine")
    assert main(["bench", "--equations", "1", "--out", str(out), "--no-progress"]) == 2
    assert "did not write (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_report_folders_are_named_readably():
    from emp_kan.data.problems import formula_problem

    assert formula_problem("m*v**2/2", "m=0:1,v=0:1", samples=10).name == "formula-m·v^2÷2"
    assert "/" not in formula_problem("x/(y+1)", "x=0:1,y=0:1", samples=10).name


def test_the_report_holds_the_pruned_kan_as_a_pykan_checkpoint(tmp_path):
    import torch

    from emp_kan.app.report import write_report
    from emp_kan.data.problems import formula_problem
    from emp_kan.discovery.config import DiscoverConfig
    from emp_kan.discovery.discover import discover
    from emp_kan.kan import adapter

    problem = formula_problem("x*y + 1", "x=-1:1,y=-1:1", samples=60)
    config = DiscoverConfig(hidden=(2,), grid=3, steps=3, round_steps=2, rounds=1, compare=False)
    report, runs = discover(problem, config)
    write_report(tmp_path / "out", report, runs, problem)
    loaded = adapter.load_checkpoint(tmp_path / "out" / "model")  # pykan's own KAN.loadckpt
    x = torch.rand(16, 2) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x), adapter.forward_pass(runs["emp"].pruned.model, x))
    assert "graph-threshold.png" not in os.listdir(tmp_path / "out")  # no baseline was run


@pytest.mark.skipif(usable_workers(2) < 2, reason="side by side needs two CPUs")
def test_each_method_is_drawn_where_it_ran_and_drawn_the_same(tmp_path):
    # The CLI draws the EMP run's figures here while the threshold child draws its own; the
    # report holds the same files as one drawn at the end, in this process.
    from emp_kan.app.report import render_figures, write_report
    from emp_kan.data.problems import formula_problem
    from emp_kan.discovery.config import DiscoverConfig
    from emp_kan.discovery.discover import discover
    from emp_kan.discovery.run import RunHook

    problem = formula_problem("x*y + 1", "x=-1:1,y=-1:1", samples=60)
    config = DiscoverConfig(hidden=(2,), grid=3, steps=3, round_steps=2, rounds=1, workers=2)
    pids = RunHook(lambda method, run: (os.getpid(), run.name))
    discover(problem, config, on_run=pids)
    assert pids.results["emp"] == (os.getpid(), "emp")
    child, name = pids.results["threshold"]
    assert child != os.getpid() and name == "threshold"  # drawn in the child that ran it

    drawn = RunHook(lambda method, run: render_figures(method, run, problem))
    report, runs = discover(problem, config, on_run=drawn)
    assert sorted(drawn.results) == ["emp", "threshold"]
    write_report(tmp_path / "early", report, runs, problem, drawn.results)
    write_report(tmp_path / "late", report, runs, problem)
    names = sorted(os.listdir(tmp_path / "late"))
    assert sorted(os.listdir(tmp_path / "early")) == names
    both = ("graph.png", "history.png", "graph-threshold.png", "history-threshold.png")
    for name in (*both, "graph.graphml"):
        assert (tmp_path / "early" / name).read_bytes() == (tmp_path / "late" / name).read_bytes()


def test_write_report_refuses_rendered_files_that_are_not_report_files(tmp_path):
    # A rendered name is joined to the staging folder: "../x" would write outside it.
    from emp_kan.app.report import write_report

    with pytest.raises(ValueError, match=r"not \.\./escape\.png"):
        write_report(tmp_path / "out", {}, {}, None, {"emp": {"../escape.png": b"x"}})
    assert os.listdir(tmp_path) == []


def test_the_summary_names_the_routes_run_and_skipped():
    from emp_kan.app.cli import _table

    def run(method, routes, skipped):
        return {
            "method": method,
            "formula": "x",
            "exact": True,
            "test_rmse": 0.0,
            "test_r2": 1.0,
            "edges": {"initial": 4, "final": 1},
            "nodes": {"initial": 2, "final": 1},
            "rejected_attempts": 0,
            "timings": {"train": 1.0, "prune": 1.0, "symbolic": 1.0},
            "candidates": [{"route": r} for r in routes],
            "skipped_routes": skipped,
        }

    report = {
        **run("emp", ["none", "none"], ["log", "log-y"]),
        "truth": "x",
        "baseline": run("threshold", ["none", "log", "log-y"], []),
    }
    line = next(x for x in _table(report, "out").splitlines() if x.startswith("routes"))
    assert "none (skipped log, log-y)" in line and "none, log, log-y" in line
