#!/bin/sh
# Set up .venv from the repo's own files, then run one job in it.
#   sh bootstrap.sh run [ARGS...]   emp-kan discover on its built-in default (or emp-kan ARGS)
#   sh bootstrap.sh test            ruff, then the test suite
# Idempotent: the install step is skipped while pyproject.toml and constraints.txt are unchanged.
set -eu
cd "$(dirname "$0")"
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

case "$job" in
    run)  [ $# -gt 0 ] || set -- discover
          exec .venv/bin/emp-kan "$@" ;;
    test) .venv/bin/ruff check . && exec .venv/bin/python -m pytest -q "$@" ;;
    *)    echo "usage: sh bootstrap.sh {run|test} [ARGS...]" >&2; exit 2 ;;
esac
