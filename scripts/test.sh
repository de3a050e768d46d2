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
# The workspace's browser tests drive Debian's chromium (Playwright never
# downloads a browser here); a CJK font makes its screenshots readable.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "scripts/test.sh: missing ${need[*]}; install them with apt-get (as root)" >&2
  fi
fi
.venv/bin/ruff check bot nlu flows tests bench
.venv/bin/ruff format --check bot nlu flows tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
