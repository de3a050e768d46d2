#!/usr/bin/env bash
# A real Rasa 3.6 beside 同心: its own venv, training on our data, serving /model/parse.
#
#   scripts/rasa.sh setup                       build (or reuse) the Rasa venv; prints its path
#   scripts/rasa.sh venv                        print the venv path (no building)
#   scripts/rasa.sh train DIR [export options]  export our data into DIR and train DIR/models/tongxin.tar.gz
#   scripts/rasa.sh serve DIR [PORT]            rasa run --enable-api on 127.0.0.1:PORT (default 5005)
#   scripts/rasa.sh validate DIR                rasa data validate on the exported project
#
# Export options go to `tongxin nlu export-rasa` (e.g. --data FILE, --epochs N).
# Rasa 3.6.21 declares Python < 3.11; on 3.11 it installs with pip told to ignore that
# marker and its dependencies held at versions with 3.11 wheels (scripts/rasa/constraints.txt).
# Its pins conflict with ours, so it never goes into the project's .venv. The venv lives in
# the cache folder under a name keyed by the constraints and requirements, so a change to
# either builds a fresh one and an unchanged pair is reused.
#
# Environment: TONGXIN_CACHE_DIR (default ~/.cache/tongxin), TONGXIN_RASA_VENV (override the
# path), PYTHON (the interpreter for the venv, default python3), TONGXIN (our CLI, default
# .venv/bin/tongxin), RASA_HOST (default 127.0.0.1).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/scripts/rasa
CONSTRAINTS=$HERE/constraints.txt
REQUIREMENTS=$HERE/requirements.txt
CACHE=${TONGXIN_CACHE_DIR:-$HOME/.cache/tongxin}
KEY=$(cat "$CONSTRAINTS" "$REQUIREMENTS" | sha256sum | cut -c1-12)
VENV=${TONGXIN_RASA_VENV:-$CACHE/rasa-venv-$KEY}
# Telemetry tries to reach the internet at every command.
export RASA_TELEMETRY_ENABLED=false

die() {
  echo "scripts/rasa.sh: $*" >&2
  exit 1
}

build_packages() {
  # matplotlib 3.5 (held by the constraints) has no 3.11 wheel and builds against these.
  local need=()
  dpkg -s libfreetype-dev >/dev/null 2>&1 || need+=(libfreetype-dev)
  dpkg -s libqhull-dev >/dev/null 2>&1 || need+=(libqhull-dev)
  command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "scripts/rasa.sh: installing ${need[*]} (needed to build matplotlib)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    die "missing Debian packages ${need[*]}; install them (as root): apt-get install ${need[*]}"
  fi
}

setup() {
  if [ -f "$VENV/.complete" ]; then
    echo "$VENV"
    return 0
  fi
  mkdir -p "$(dirname "$VENV")"
  # One builder at a time (a test and a user may start together); the others wait for it.
  exec 9>"$VENV.lock"
  flock 9
  if [ -f "$VENV/.complete" ]; then
    echo "$VENV"
    return 0
  fi
  build_packages
  rm -rf "$VENV"  # a half-built venv from an interrupted run
  local started=$SECONDS
  echo "scripts/rasa.sh: building the Rasa venv in $VENV (about 6 minutes, 1.6 GB)" >&2
  "${PYTHON:-python3}" -m venv "$VENV"
  printf '[libs]\nsystem_freetype = true\nsystem_qhull = true\n' >"$VENV/mplsetup.cfg"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  MPLSETUPCFG=$VENV/mplsetup.cfg "$VENV/bin/python" -m pip install --quiet \
    --ignore-requires-python -c "$CONSTRAINTS" -r "$REQUIREMENTS"
  "$VENV/bin/rasa" --version >&2
  date -u +%FT%TZ >"$VENV/.complete"
  echo "scripts/rasa.sh: Rasa venv built in $((SECONDS - started)) s" >&2
  echo "$VENV"
}

tongxin_cli() {
  if [ -n "${TONGXIN:-}" ]; then
    echo "$TONGXIN"
  elif [ -x "$ROOT/.venv/bin/tongxin" ]; then
    echo "$ROOT/.venv/bin/tongxin"
  elif command -v tongxin >/dev/null 2>&1; then
    command -v tongxin
  else
    die "no tongxin CLI: run scripts/test.sh (or pip install -e .) first, or set TONGXIN"
  fi
}

need_venv() {
  [ -f "$VENV/.complete" ] || die "no Rasa venv at $VENV: run scripts/rasa.sh setup first"
}

train() {
  [ $# -ge 1 ] || die "usage: scripts/rasa.sh train DIR [export-rasa options]"
  local dir=$1
  shift
  need_venv
  "$(tongxin_cli)" nlu export-rasa "$dir" "$@" >&2
  local started=$SECONDS
  (cd "$dir" && "$VENV/bin/rasa" train nlu --config config.yml --nlu data \
    --out models --fixed-model-name tongxin --quiet)
  echo "scripts/rasa.sh: trained $dir/models/tongxin.tar.gz in $((SECONDS - started)) s" >&2
}

serve() {
  [ $# -ge 1 ] || die "usage: scripts/rasa.sh serve DIR [PORT]"
  local dir=$1 port=${2:-5005}
  need_venv
  [ -f "$dir/models/tongxin.tar.gz" ] || die "no model in $dir/models: run scripts/rasa.sh train $dir"
  # exec: the caller's pid is the server's, so stopping it stops Rasa.
  cd "$dir"
  exec "$VENV/bin/rasa" run --enable-api -m models/tongxin.tar.gz \
    -i "${RASA_HOST:-127.0.0.1}" -p "$port"
}

validate() {
  [ $# -ge 1 ] || die "usage: scripts/rasa.sh validate DIR"
  need_venv
  cd "$1"
  exec "$VENV/bin/rasa" data validate --config config.yml --data data --domain domain.yml
}

case "${1:-}" in
  setup) setup ;;
  venv) echo "$VENV" ;;
  train) shift; train "$@" ;;
  serve) shift; serve "$@" ;;
  validate) shift; validate "$@" ;;
  *) die "usage: scripts/rasa.sh setup|venv|train DIR [options]|serve DIR [PORT]|validate DIR" ;;
esac
