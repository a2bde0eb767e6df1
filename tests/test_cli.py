"""The ``emp-kan`` command: version, help, the demo, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from emp_kan import __version__
from emp_kan.app.cli import main


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"emp-kan {__version__}"


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out


def test_demo_prints_what_emp_kept(capsys):
    assert main(["demo", "--scores", "4,1,1,1,1"]) == 0
    out = capsys.readouterr().out
    assert "keep nu = 3 of 5" in out
    assert out.count("yes") == 3


@pytest.mark.parametrize(
    "argv",
    [["demo", "--beta", "0"], ["demo", "--scores", "1,x"], ["nonsense"], ["demo", "--nope"]],
)
def test_bad_usage_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("emp-kan: error: ")
    assert err.count("\n") == 1


def test_console_script_runs_as_a_process():
    proc = subprocess.run(
        [sys.executable, "-m", "emp_kan.app.cli", "demo", "--beta", "nan"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_demo_shows_the_mass_bound_only_where_it_holds(capsys):
    assert main(["demo", "--scores", "1,1,1,1", "--beta", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "(lower bound" not in out and "only for beta >= 1" in out
    assert main(["demo", "--scores", "1,1,1,1", "--beta", "1"]) == 0
    assert "(lower bound 1.0000)" in capsys.readouterr().out


def test_the_console_script_exits_quickly_with_all_its_output(capsys):
    # run() skips the interpreter's teardown; what main() prints must still all arrive,
    # through a pipe, with main()'s exit code.
    argv = ["demo", "--scores", "5,3,1,1", "--beta", "1"]
    assert main(argv) == 0
    expected = capsys.readouterr().out
    proc = subprocess.run(
        [sys.executable, "-m", "emp_kan.app.cli", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout == expected and expected.strip()


def test_the_parser_and_its_defaults_import_no_torch_sympy_or_pykan():
    # `emp-kan --help` must answer at once: torch alone takes over a second to import.
    code = (
        "import sys\nfrom emp_kan.app.cli import build_parser\nbuild_parser()\n"
        "print(sorted(m for m in ('torch', 'sympy', 'kan', 'numba', 'scipy') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
