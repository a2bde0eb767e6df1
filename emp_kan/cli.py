"""The ``emp-kan`` command line.

Every user error ends as one line on stderr and exit code 2; anything unexpected exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
        f"  preserved mass s_eff = {sel.preserved_mass:.4f} (lower bound {sel.mass_bound:.4f})",
        "",
        "  index     score   weight  kept",
    ]
    for i, (s, k) in enumerate(zip(scores, sel.mask.tolist(), strict=True)):
        lines.append(f"  {i:5d} {s:9.4g} {abs(s) / total:8.4f}  {'yes' if k else '-'}")
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``emp-kan`` (used by the CLI reference in docs/)."""
    parser = _Parser(
        prog="emp-kan",
        description="Effective Model Pruning for Kolmogorov-Arnold Networks.",
    )
    parser.add_argument("--version", action="version", version=f"emp-kan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emp-kan`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help()
            return 0
        return args.handler(args)
    except UsageError as exc:
        print(f"emp-kan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emp-kan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
