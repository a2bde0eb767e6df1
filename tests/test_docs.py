"""The CLI and API references in docs/ match the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _reference_module():
    spec = importlib.util.spec_from_file_location("make_reference", DOCS / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_help():
    expected = _reference_module().cli_reference()
    assert (DOCS / "cli.md").read_text() == expected, "run docs/make_reference.py"


def test_api_reference_lists_every_public_name():
    import emp_kan

    text = (DOCS / "api.md").read_text()
    assert text == _reference_module().api_reference(), "run docs/make_reference.py"
    for name in emp_kan.__all__:
        if name != "__version__":
            assert f"## `{name}`" in text


@pytest.mark.parametrize("name", ["EMPKANRegressor", "EMPKANClassifier"])
def test_the_estimators_examples_run_as_written(name):
    import doctest

    import emp_kan

    cls = getattr(emp_kan, name)
    example = doctest.DocTestParser().get_doctest(cls.__doc__, {}, name, None, 0)
    assert example.examples, f"{name} has no Examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(example)
    assert runner.failures == 0
