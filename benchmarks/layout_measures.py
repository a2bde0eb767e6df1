"""The renovation's measures: modules over 500 lines, functions over 80 lines (an AST walk),
the places that carve validation rows (``Split.of``'s body), function-local imports of the
package's own modules, and how long ``emp-kan --help`` takes.

    .venv/bin/python benchmarks/layout_measures.py
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent / "emp_kan"


def main() -> None:
    long_modules, long_functions, local_imports = [], [], 0
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text()
        name = str(path.relative_to(ROOT.parent))
        if source.count("\n") > 500:
            long_modules.append((source.count("\n"), name))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long_functions.append((length, f"{name}:{node.lineno} {node.name}"))
                local_imports += sum(
                    isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("emp_kan")
                    for inner in ast.walk(node)
                )
    print("modules over 500 lines:", *sorted(long_modules, reverse=True), sep="\n  ")
    print("functions over 80 lines:", *sorted(long_functions, reverse=True), sep="\n  ")
    carving = [
        str(path.relative_to(ROOT.parent))
        for path in sorted(ROOT.rglob("*.py"))
        if "n_val = max(1, int(n * fraction" in path.read_text()
    ]
    print("validation rows carved in:", *carving)
    print(f"function-local imports of emp_kan modules: {local_imports}")
    best = min(_seconds([sys.executable, "-m", "emp_kan.app.cli", "--help"]) for _ in range(5))
    print(f"emp-kan --help: {best:.2f} s (best of 5)")


def _seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
