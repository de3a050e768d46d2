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
# Debian packages the tests drive for real (a fresh machine has none of them):
# chromium for the workspace's browser tests (Playwright never downloads a
# browser here) with a CJK font for readable screenshots; nginx for the
# reverse-proxy example in tests/hardening/test_reverse_proxy.py; systemd for
# `systemd-analyze verify` of deploy/systemd/ (tests/hardening/test_deploy_files.py);
# postgresql for the store's second backend (tests/pg_server.py starts a private server).
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || need+=(fonts-wqy-microhei)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "scripts/test.sh: missing ${need[*]}; install them with apt-get (as root)" >&2
  fi
fi
# A real Rasa 3.6 for tests/nlu/test_rasa_real.py: its own venv, built once into the cache
# folder (keyed by scripts/rasa/constraints.txt) and reused. Required here: a venv that cannot
# be built fails that test (with pip's output) instead of skipping it.
export TONGXIN_RASA_TEST=required
rasa_started=$SECONDS
if bash scripts/rasa.sh setup >/dev/null; then
  echo "scripts/test.sh: Rasa venv ready in $((SECONDS - rasa_started)) s"
else
  echo "scripts/test.sh: the Rasa venv could not be built; tests/nlu/test_rasa_real.py will fail" >&2
fi
.venv/bin/ruff check bot nlu flows tests bench
.venv/bin/ruff format --check bot nlu flows tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
