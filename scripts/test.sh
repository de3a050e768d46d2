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
# tests/hardening/test_reverse_proxy.py runs deploy/nginx/tongxin.conf with a real nginx.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null
  else
    echo "nginx missing: run 'sudo apt-get install nginx-light'" >&2
  fi
fi
.venv/bin/ruff check bot nlu flows tests bench
.venv/bin/ruff format --check bot nlu flows tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
