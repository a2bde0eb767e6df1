"""Compiled loops keep their machine code only where allowed: written when Python may write
bytecode or at install time (python -m emp_kan.app.precompile), read by every later process, which
then writes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import emp_kan

PACKAGE = Path(emp_kan.__file__).parent

# edge_moments is the smallest loop: quick to compile, and it has a known answer.
CALL = """
import numpy as np
import emp_kan.kan.fast.kernels as kernels
assert kernels.__file__.startswith({root!r}), kernels.__file__
edges = np.arange(12.0).reshape(2, 3, 2)
mean, variance = np.zeros((2, 3)), np.zeros((2, 3))
kernels.edge_moments(edges, mean, variance)
assert np.allclose(mean, edges.mean(axis=2)) and np.allclose(variance, edges.var(axis=2, ddof=1))
stats = kernels.edge_moments.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def _copy_of_the_package(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(PACKAGE, root / "emp_kan", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    return root


def _files(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))


def _run(tmp_path: Path, root: Path, code: str, *flags: str) -> list[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    env.update(PYTHONPATH=str(root), HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, *flags, "-c", code.format(root=str(root))],
        cwd=tmp_path / "cwd",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(n) for n in done.stdout.split()]


def test_without_leave_to_write_bytecode_nothing_is_written(tmp_path):
    root = _copy_of_the_package(tmp_path)
    before = _files(tmp_path)
    assert _run(tmp_path, root, CALL, "-B") == [0, 1]  # compiled in memory
    assert _files(tmp_path) == before  # no __pycache__, nothing in the home folder


def test_code_kept_at_install_time_is_loaded_later_without_writing(tmp_path):
    root = _copy_of_the_package(tmp_path)
    keep = "from emp_kan._runtime import jit as _jit\n_jit.keep_compiled_code()\n" + CALL
    assert _run(tmp_path, root, keep, "-B") == [0, 1]  # compiled, and kept although -B
    kept = _files(tmp_path)
    assert any(name.endswith(".nbi") for name in kept)
    assert all("home" not in name for name in kept if name.endswith((".nbi", ".nbc")))
    assert _run(tmp_path, root, CALL, "-B") == [1, 0]  # loaded, not compiled
    assert _files(tmp_path) == kept
    # Once the module's source changes, the kept code is not used, and still nothing written.
    kernels = root / "emp_kan" / "kan" / "fast" / "kernels.py"
    kernels.write_text(kernels.read_text() + "\n# changed\n")
    assert _run(tmp_path, root, CALL, "-B") == [0, 1]
    assert _files(tmp_path) == kept


def test_where_python_may_write_bytecode_the_code_is_kept_as_numba_would(tmp_path):
    root = _copy_of_the_package(tmp_path)
    assert _run(tmp_path, root, CALL) == [0, 1]
    assert _run(tmp_path, root, CALL) == [1, 0]
    assert (root / "emp_kan" / "kan" / "fast" / "__pycache__").is_dir()
    assert not any((tmp_path / "home").iterdir())


def test_precompile_refuses_to_run_after_the_loops_were_compiled_without_it():
    code = (
        "import emp_kan.kan.fast.kernels\nfrom emp_kan.app.precompile import main\n"
        "try:\n    main()\nexcept RuntimeError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-B", "-c", code], capture_output=True, text=True, check=True
    )
    assert "emp_kan.kan.fast.kernels imported before" in done.stdout
