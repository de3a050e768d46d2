#!/usr/bin/env bash
# Set up a virtual environment with the test extras and run every check.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check bot nlu flows tests bench
.venv/bin/ruff format --check bot nlu flows tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
