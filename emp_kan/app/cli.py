"""The ``emp-kan`` command line.

Every user error ends as one line on stderr and exit code 2; anything unexpected exits 1.

The package's heavier modules (torch, sympy, pykan, numba behind them) are imported inside the
commands that use them, not here: ``emp-kan --help`` and a mistyped option answer in about
0.1 s (a test holds ``build_parser`` to importing none of them).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from emp_kan import __version__
from emp_kan.core import emp_select

# Scores of a 12-node hidden layer: a few strong nodes, a tail of weak ones.
DEMO_SCORES = (0.91, 0.62, 0.05, 0.48, 0.02, 0.33, 0.01, 0.27, 0.04, 0.003, 0.15, 0.008)


class UsageError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit itself
        raise UsageError(message)


def _parse_scores(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--scores must be comma-separated numbers, got {text!r}") from None


def _run_demo(args: argparse.Namespace) -> int:
    scores = _parse_scores(args.scores) if args.scores else list(DEMO_SCORES)
    try:
        sel = emp_select(scores, beta=args.beta)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    total = sum(abs(s) for s in scores) or 1.0
    lines = [
        f"EMP on {len(scores)} scores (beta={args.beta:g}):",
        f"  N_eff = {sel.n_eff:.4f}; keep nu = {sel.kept} of {sel.n_alive}",
        f"  preserved mass s_eff = {sel.preserved_mass:.4f} "
        + (
            f"(lower bound {sel.mass_bound:.4f})"
            if sel.mass_bound is not None
            else "(no lower bound: the mass bound holds only for beta >= 1)"
        ),
        "",
        "  index     score   weight  kept",
    ]
    for i, (s, k) in enumerate(zip(scores, sel.mask.tolist(), strict=True)):
        lines.append(f"  {i:5d} {s:9.4g} {abs(s) / total:8.4f}  {'yes' if k else '-'}")
    print("\n".join(lines))
    return 0


_DEFAULT_SAMPLES = 500
DEFAULT_FEYNMAN = 37  # hbar * omega on [-1, 1]^2: two variables, a product a KAN can express


def _problem(args: argparse.Namespace):
    from emp_kan.data import problems as data
    from emp_kan.data.units import parse_units_option

    given = [
        n
        for n, v in (("--feynman", args.feynman), ("--formula", args.formula), ("--csv", args.csv))
        if v is not None
    ]
    if len(given) > 1:
        raise UsageError(f"give one data source, not {' and '.join(given)}")
    if args.ranges is not None and args.formula is None:
        raise UsageError("--ranges goes with --formula")
    if args.target is not None and args.csv is None:
        raise UsageError("--target goes with --csv")
    for flag, value in (("--inputs", args.inputs), ("--exclude", args.exclude)):
        if value is not None and args.csv is None:
            raise UsageError(f"{flag} goes with --csv")
    if args.dropna and args.csv is None:
        raise UsageError("--dropna goes with --csv")
    units = None if args.units is None else parse_units_option(args.units)
    problem = _source(args, data, units)
    if units is not None and args.csv is None:
        problem = data.with_units(problem, units)
    return problem


def _source(args: argparse.Namespace, data: Any, units: dict[str, str] | None) -> Any:
    if args.formula is not None:
        if args.ranges is None:
            raise UsageError('--formula needs --ranges, e.g. --ranges "x=0:1,y=0:2"')
        return data.formula_problem(args.formula, args.ranges, _samples(args), args.seed)
    if args.csv is not None:
        if args.target is None:
            raise UsageError("--csv needs --target COLUMN")
        if args.samples is not None:
            raise UsageError(
                "--samples goes with --feynman or --formula; a CSV's rows are its own "
                "(--max-rows N limits how many of them train)"
            )
        return data.csv_problem(
            args.csv,
            args.target,
            args.seed,
            inputs=_columns(args.inputs),
            exclude=_columns(args.exclude) or (),
            dropna=args.dropna,
            units=units,
        )
    number = DEFAULT_FEYNMAN if args.feynman is None else args.feynman
    return data.feynman_problem(number, _samples(args), args.seed)


def _columns(text: str | None) -> list[str] | None:
    """``"a,b c"`` -> ``["a", "b c"]`` (column names as written in the file)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise UsageError(f"an empty column name in {text!r}; separate names with commas")
    return names


def _samples(args: argparse.Namespace) -> int:
    return _DEFAULT_SAMPLES if args.samples is None else args.samples


def _fmt(value, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _table(report: dict, out: str) -> str:
    runs = [("EMP", report)] + (
        [("pykan thresholds", report["baseline"])] if report.get("baseline") else []
    )
    if report.get("operon"):
        runs.append(("Operon", report["operon"]))

    def short(text: str, width: int = 70) -> str:
        return text if len(text) <= width else text[: width - 3] + "..."

    def counts(r: dict, key: str) -> str:
        return f"{r[key]['initial']} -> {r[key]['final']}" if key in r else "-"

    def routes(r: dict) -> str:
        if "candidates" not in r:  # Operon: no KAN routes
            return "-"
        ran = ", ".join(dict.fromkeys(c["route"] for c in r["candidates"]))
        skipped = r.get("skipped_routes") or []
        return ran + (f" (skipped {', '.join(skipped)})" if skipped else "")

    def seconds(r: dict) -> str:
        if "timings" not in r:  # Operon: one fit, no stages
            return f"{r['seconds']:.1f} in all"
        return "/".join(f"{r['timings'][k]:.1f}" for k in ("train", "prune", "symbolic"))

    def source(r: dict) -> str:
        if "source" not in r:  # Operon: its own search
            return "-"
        kept, dropped = r["inputs"]["kept"], r["inputs"]["dropped"]
        return f"{r['source']}; KAN kept {', '.join(kept) or 'none'}" + (
            f", dropped {', '.join(dropped)}" if dropped else ""
        )

    def constants(r: dict) -> str:
        listed = [
            (
                f"{c['value']:.4g} ± {c['std_error']:.2g}"
                if c.get("std_error") is not None
                else f"{c['value']:.4g}"
            )
            + (f" {c['units']}" if c.get("units") not in (None, "1") else "")
            for c in r.get("constants", [])
        ]
        return short(", ".join(listed)) if listed else "-"

    def units() -> str:
        given = report["units"]
        if not given["groups"]:
            return short(given["note"], 90)
        groups = ", ".join(f"{n} = {g}" for n, g in given["groups"].items() if n != g)
        return short(f"KAN of {given['label']}" + (f" over {groups}" if groups else ""), 90)

    rows = [("formula", [short(r["formula"]) for _, r in runs])]
    if any(r.get("constants") for _, r in runs):
        rows.append(("constants", [constants(r) for _, r in runs]))
    if report.get("units"):
        rows.append(("units", [units()] + ["-"] * (len(runs) - 1)))
    if report["truth"] is not None:  # a known law: how it compares
        rows += [
            ("truth", [report["truth"]] * len(runs)),
            ("exact", [_fmt(r["exact"]) for _, r in runs]),
        ]
    rows += [
        ("read from", [source(r) for _, r in runs]),
        ("test RMSE", [_fmt(r["test_rmse"]) for _, r in runs]),
        ("test R^2", [_fmt(r["test_r2"], ".5f") for _, r in runs]),
        ("spline RMSE", [_fmt(r.get("spline_test_rmse")) for _, r in runs]),
        ("edges", [counts(r, "edges") for _, r in runs]),
        ("hidden nodes", [counts(r, "nodes") for _, r in runs]),
        ("rejected attempts", [_fmt(r.get("rejected_attempts")) for _, r in runs]),
        ("routes", [routes(r) for _, r in runs]),
        ("seconds train/prune/sym", [seconds(r) for _, r in runs]),
    ]
    label_w = max(len(label) for label, _ in rows)
    col_w = [
        max(len(name), *(len(values[k]) for _, values in rows)) for k, (name, _) in enumerate(runs)
    ]
    lines = [
        " " * label_w
        + " | "
        + " | ".join(n.ljust(w) for (n, _), w in zip(runs, col_w, strict=True))
    ]
    lines.append("-" * len(lines[0]))
    for label, values in rows:
        cells = " | ".join(v.ljust(w) for v, w in zip(values, col_w, strict=True))
        lines.append(f"{label.ljust(label_w)} | {cells}")
    for _, r in runs:
        for w in r.get("warnings", [])[:3]:
            lines.append(f"note ({r['method']}): {w}")
    if any(len(r["formula"]) > 70 for _, r in runs):
        lines.append("(long formulas are shortened here; report.json holds them in full)")
    lines.append(f"report: {out}")
    return "\n".join(lines)


def _baselines(args: argparse.Namespace) -> set[str]:
    names = {p.strip() for p in args.compare.split(",") if p.strip()}
    bad = names - {"threshold", "operon", "none"}
    if bad or not names or ("none" in names and len(names) > 1):
        raise UsageError(
            f"--compare takes threshold, operon, threshold,operon or none; got {args.compare!r}"
        )
    return names - {"none"}


def _one_torch_thread() -> None:
    """One torch thread unless OMP_NUM_THREADS says otherwise: KANs this small gain nothing
    from a second one, and two contend badly on a busy machine (171 s against 48 s for the
    default discover, docs/benchmarks.md)."""
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


def _run_discover(args: argparse.Namespace) -> int:
    from emp_kan.app.report import check_destination, render_figures, write_report
    from emp_kan.discovery.config import DiscoverConfig, settings_for
    from emp_kan.discovery.discover import discover
    from emp_kan.discovery.routes import plan_routes
    from emp_kan.discovery.run import RunHook

    _one_torch_thread()
    try:
        baselines = _baselines(args)
        problem = _problem(args)
        config = DiscoverConfig(
            **{name: getattr(args, name) for name in settings_for("cli")},
            compare="threshold" in baselines,
            operon="operon" in baselines,
        ).check()
        plan_routes(problem, config)  # a route that does not apply fails here
        out = args.out or f"emp-kan-out/{problem.name}"
        check_destination(out)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # Each method's figures drawn in the process that ran it, as soon as it is done.
    drawn = RunHook(lambda method, run: render_figures(method, run, problem))
    report, runs = discover(problem, config, on_run=drawn)
    path = write_report(out, report, runs, problem, drawn.results)
    print(_table(report, str(path)))
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    from emp_kan.app.bench import (
        BenchSettings,
        check_out_dir,
        check_request,
        parse_levels,
        parse_numbers,
        run_bench,
    )
    from emp_kan.app.bench_summary import summarise
    from emp_kan.discovery.config import settings_for

    try:
        equations = parse_numbers(args.equations, "equations")
        seeds = parse_numbers(args.seeds, "seeds")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        check_request(equations, methods)
        levels = parse_levels(args.noise)
        settings = BenchSettings(
            samples=args.samples,
            units=args.units,
            **{name: getattr(args, name) for name in settings_for("bench")},
        ).check()
        check_out_dir(args.out, settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rows = run_bench(
        equations,
        methods,
        seeds,
        args.out,
        settings,
        args.scheduler,
        progress=args.progress,
        noise_levels=levels,
    )
    summary = summarise(rows)
    if len(summary["by_noise"]) > 1:
        for m, counts in summary["by_noise"].items():
            print(
                f"{m:10s} exact by noise level: "
                + ", ".join(
                    f"{level:g}: {exact}/{tasks}" for level, (exact, tasks) in counts.items()
                )
            )
    for m, a in summary["methods"].items():
        print(
            f"{m:10s} exact {a['exact']}/{a['tasks']}  median edges {a['median_edges']}  "
            f"median s {a['median_seconds']:.1f}  failed {a['failed']}  "
            f"rejected attempts {a['rejected_attempts']}"
        )
    for other, t in summary["emp_versus"].items():
        print(f"EMP vs {other}: {t['win']} wins, {t['loss']} losses, {t['tie']} ties")
    print(f"results: {args.out}/results.jsonl, summary: {args.out}/summary.md")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``emp-kan`` (used by the CLI reference in docs/)."""
    parser = _Parser(
        prog="emp-kan",
        description="Effective Model Pruning for Kolmogorov-Arnold Networks.",
    )
    parser.add_argument("--version", action="version", version=f"emp-kan {__version__}")
    parser.add_argument("--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_demo, _add_discover, _add_bench):
        command = add(sub)
        # Also after the command (emp-kan discover ... --verbose); SUPPRESS leaves the
        # top-level flag as it was when it is not given here.
        command.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _add_demo(sub: Any) -> argparse.ArgumentParser:
    demo = sub.add_parser(
        "demo",
        help="run the EMP core on a built-in score vector and print what it keeps",
        description="Run the EMP core on a score vector and print what it keeps.",
    )
    demo.add_argument(
        "--scores", help="comma-separated scores (default: a built-in 12-node example)"
    )
    demo.add_argument("--beta", type=float, default=1.0, help="scale on N_eff (default: 1)")
    demo.set_defaults(handler=_run_demo)
    return demo


def _add_discover(sub: Any) -> argparse.ArgumentParser:
    disc = sub.add_parser(
        "discover",
        help="find the formula in a KAN: train, EMP rounds, symbolic fit (vs pykan thresholds)",
        description=(
            "Train a KAN, prune it with EMP between training rounds, and turn the surviving "
            "splines into a verified formula; from the same trained model, do the same with "
            "pykan's threshold pruning for comparison. With no data source it runs on pykan's "
            f"Feynman equation {DEFAULT_FEYNMAN} (hbar*omega)."
        ),
    )
    src = disc.add_argument_group(f"data source (at most one; default --feynman {DEFAULT_FEYNMAN})")
    src.add_argument(
        "--feynman",
        type=int,
        metavar="N",
        help="equation N of pykan's Feynman set (1-120; 20, 113, 114 are broken)",
    )
    src.add_argument(
        "--formula",
        metavar="EXPR",
        help='a formula, e.g. "x*exp(-y)": numbers, names, + - * / ** ^, parentheses, pi, E, '
        "and sin cos tan exp log sqrt abs tanh and their kin (never run as Python)",
    )
    src.add_argument("--ranges", metavar="SPEC", help='input ranges for --formula: "x=0:1,y=0:2"')
    src.add_argument("--csv", metavar="PATH", help="a CSV file with a header row")
    src.add_argument("--target", metavar="COLUMN", help="the label column of --csv")
    src.add_argument(
        "--inputs",
        metavar="COLUMNS",
        help='the input columns of --csv, e.g. "m1,m2,r" (default: every column but the target)',
    )
    src.add_argument("--exclude", metavar="COLUMNS", help="columns of --csv left out of the inputs")
    src.add_argument(
        "--dropna",
        action="store_true",
        help="drop rows of --csv with a missing cell in a used column (default: refuse them)",
    )
    src.add_argument(
        "--samples",
        type=int,
        default=None,
        help=f"train and test rows each for --feynman/--formula (default: {_DEFAULT_SAMPLES})",
    )
    src.add_argument(
        "--units",
        metavar="SPEC",
        help='the units of the inputs and the target, as pint reads them, e.g. "F=kg*m/s^2,'
        'm1=kg,m2=kg,r=m" (1: a pure number); the KAN then learns the law between '
        "dimensionless groups (Buckingham pi). A CSV can instead name them in its header, "
        "F [N]",
    )
    out = disc.add_argument_group("output and baselines")
    out.add_argument(
        "--out",
        metavar="DIR",
        help="report folder: new, empty, or an earlier emp-kan report, which is replaced "
        "(default: emp-kan-out/<dataset>)",
    )
    out.add_argument(
        "--compare",
        metavar="LIST",
        default="threshold",
        help="baselines run beside EMP: threshold (pykan's threshold pruning, same trained "
        "model), operon (pyoperon's genetic programming on the same rows; pip install "
        "'emp-kan[sr]'), both as threshold,operon, or none (default: %(default)s)",
    )
    _add_settings(disc.add_argument_group("settings"), "cli")
    disc.set_defaults(handler=_run_discover)
    return disc


def _add_bench(sub: Any) -> argparse.ArgumentParser:
    bench = sub.add_parser(
        "bench",
        help="run methods over Feynman equations and seeds on Dask (resumable)",
        description=(
            "Run each (equation, method, seed, noise level) as one task on a Dask cluster "
            "(local by default, one single-threaded worker per core). Finished tasks are "
            "appended to DIR/results.jsonl at once; running the same command again resumes. "
            "Writes "
            "DIR/summary.md and DIR/summary.png."
        ),
    )
    bench.add_argument(
        "--equations",
        required=True,
        metavar="LIST",
        help="Feynman equation numbers, e.g. 1,2,4-12",
    )
    bench.add_argument(
        "--methods",
        default="emp,threshold,pykan",
        help="any of emp, threshold, pykan, operon, rils (operon needs pip install "
        "'emp-kan[sr]'; rils needs pip install pybind11 wheel setuptools, then pip install "
        "--no-build-isolation rils-rols) (default: %(default)s)",
    )
    bench.add_argument("--seeds", default="0", metavar="LIST", help="e.g. 0,1 (default: 0)")
    bench.add_argument(
        "--noise",
        default="0",
        metavar="LEVELS",
        help="noise levels, each a share of the label std added as seeded Gaussian noise to "
        "the training labels of every method alike (test labels stay clean); every task runs "
        "at each, e.g. 0,0.001,0.01,0.1 (default: %(default)s)",
    )
    bench.add_argument("--out", required=True, metavar="DIR", help="results folder")
    bench.add_argument(
        "--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786"
    )
    bench.add_argument(
        "--samples",
        type=int,
        default=500,
        help="train and test rows each (default: %(default)s)",
    )
    bench.add_argument(
        "--units",
        action="store_true",
        help="give EMP and the thresholds each equation's SI units "
        "(emp_kan.data.feynman_units): they learn the law between dimensionless groups",
    )
    _add_settings(bench.add_argument_group("every task's budget"), "bench")
    bench.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )
    bench.set_defaults(handler=_run_bench)
    return bench


def _comma_list(kind: type) -> Any:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated values, got {text!r}"
            ) from None

    parse.__name__ = f"comma-separated {kind.__name__}"
    return parse


def _add_settings(group: Any, use: str) -> None:
    """One option per setting that ``use`` takes, derived from the settings table
    (:mod:`emp_kan.discovery.config`): its flag, type, choices, default and help."""
    from emp_kan._runtime.checks import Flag, Interval, Names, Options, Widths
    from emp_kan.discovery.config import settings_for

    for name, (default, setting) in settings_for(use).items():
        flag = "--" + name.replace("_", "-")
        if setting.cli_default is not None and use == "cli":
            default = setting.cli_default
        check, shown = setting.check, default
        options: dict[str, Any] = {"dest": name, "metavar": setting.metavar}
        if isinstance(check, Flag):
            if default:
                flag = "--no-" + name.replace("_", "-")
                options["action"] = "store_false"
            else:
                options["action"] = "store_true"
            del options["metavar"]
            help_text = f"do not {setting.help}" if default else setting.help
            group.add_argument(flag, default=default, help=help_text, **options)
            continue
        if isinstance(check, Interval):
            options["type"] = check.kind
        elif isinstance(check, Options):
            options["choices"] = check.values
            options.pop("metavar")
        elif isinstance(check, Widths):
            options["type"] = _comma_list(int)
            shown = ",".join(map(str, default))
        elif isinstance(check, Names):
            options["type"] = _comma_list(str)
            shown = ",".join(default)
        help_text = f"{setting.help} (default: {shown})".replace("%", "%%")
        group.add_argument(flag, default=default, help=help_text, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emp-kan`` console script; returns the exit code."""
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if args.command in ("discover", "bench"):
            import matplotlib

            # The command only saves figures; the library leaves the backend to its caller.
            matplotlib.use("Agg")
        if args.verbose:
            logging.basicConfig(level=logging.INFO, format="emp-kan: %(message)s")
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return 0
        return args.handler(args)
    except UsageError as exc:
        print(f"emp-kan: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args is not None and args.command == "bench":
            print(
                f"emp-kan: interrupted; finished tasks are kept in {args.out}/results.jsonl "
                "(run the same command to resume)",
                file=sys.stderr,
            )
        else:
            print("emp-kan: interrupted; nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped (emp-kan demo | head): not a failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except Exception as exc:  # one line for the user; --verbose adds the traceback
        logging.getLogger("emp_kan").debug("unexpected failure", exc_info=True)
        if args is not None and args.verbose:
            traceback.print_exc(file=sys.stderr)
        print(
            f"emp-kan: unexpected failure: {type(exc).__name__}: {exc}".splitlines()[0],
            file=sys.stderr,
        )
        return 1


def run() -> None:
    """The ``emp-kan`` console script: :func:`main`, then a quick exit with its code.

    When :func:`main` returns, the report is written and every child process is gone; what
    is left is the interpreter tearing torch, numba and sympy down module by module, which
    took 0.7-0.9 s after a default discover here. Logging and the standard streams are
    flushed and the process exits without that. (Tests and other callers use :func:`main`.)
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach the reader
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
