"""The public API: every advertised name imports and says what it is."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import emp_kan


@pytest.mark.parametrize("name", sorted(set(emp_kan.__all__) - {"__version__"}))
def test_every_public_name_imports_and_has_a_docstring(name):
    obj = getattr(emp_kan, name)
    doc = inspect.getdoc(obj)
    assert doc and len(doc.split()) >= 3, f"{name} needs a docstring"


def test_internals_are_not_advertised():
    for internal in ("prune_step", "fit_edge", "RoundRecord", "LayerDecision"):
        assert internal not in emp_kan.__all__
        with pytest.raises(AttributeError):
            getattr(emp_kan, internal)
    from emp_kan.pruning.step import prune_step

    assert callable(prune_step)


# The stages, bottom to top; a module may import only from its own stage or below.
_STAGE = {
    "core": 0,
    "_runtime": 0,
    "kan": 1,
    "data": 2,
    "pruning": 2,
    "draw": 2,
    "symbolic": 3,
    "baselines": 3,
    "discovery": 4,
    "estimators": 5,
    "app": 6,
}


def _stage(module: str) -> int:
    return _STAGE[module.split(".")[1]]


def test_imports_point_down_only():
    import ast
    from pathlib import Path

    root = Path(emp_kan.__file__).parent
    for info in pkgutil.walk_packages([str(root)], prefix="emp_kan."):
        if info.name.rsplit(".", 1)[-1] == "__init__":
            continue
        module = importlib.util.find_spec(info.name)
        if module is None or module.origin is None or module.origin.endswith("__init__.py"):
            continue
        tree = ast.parse(Path(module.origin).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("emp_kan.")
            ):
                assert _stage(node.module) <= _stage(info.name), (
                    f"{info.name} imports {node.module}, which sits above it"
                )
