#!/bin/sh
# Set up .venv from the repo's own files, then run one job in it.
#   sh bootstrap.sh run [ARGS...]   emp-kan discover on its built-in default (or emp-kan ARGS)
#   sh bootstrap.sh test            ruff check and ruff format --check, then the test suite
# Idempotent: the install step is skipped while pyproject.toml and constraints.txt are unchanged,
# and compiling ahead (python -m emp_kan.app.precompile) while the compiled modules are.
set -eu
caller=$(pwd)  # `run` works here: relative paths and the default output are the caller's
cd "$(dirname "$0")"
repo=$(pwd)
job=${1:-run}
[ $# -gt 0 ] && shift

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.emp-kan-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test,sr]"
    echo "$want" > "$stamp"
fi
# numba's machine code for emp_kan's loops, kept beside their modules so that runs load it
# instead of compiling it (emp_kan/_runtime/jit.py); again whenever those modules change.
compiled=.venv/.emp-kan-compiled
have=$(cat "$stamp" emp_kan/_runtime/jit.py emp_kan/app/precompile.py emp_kan/kan/fast/kernels.py \
       emp_kan/kan/fast/optim.py emp_kan/symbolic/products/kernels.py | sha256sum | cut -d' ' -f1)
if [ "$(cat "$compiled" 2>/dev/null)" != "$have" ]; then
    if .venv/bin/python -m emp_kan.app.precompile; then
        echo "$have" > "$compiled"
    else
        echo "bootstrap.sh: compiling ahead failed; runs will compile in memory instead" >&2
    fi
fi

case "$job" in
    run)  [ $# -gt 0 ] || set -- discover
          cd "$caller" && exec "$repo/.venv/bin/emp-kan" "$@" ;;
    test) .venv/bin/ruff check . && .venv/bin/ruff format --check . && exec .venv/bin/python -m pytest -q "$@" ;;
    *)    echo "usage: sh bootstrap.sh {run|test} [ARGS...]" >&2; exit 2 ;;
esac
