#!/usr/bin/env bash
# Set up a virtual environment and start the bot in a terminal (its own sandbox database).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/tongxin shell "$@"
