#!/usr/bin/env bash
# What `make bench` needs beyond scripts/install-deps.sh: matplotlib from PyPI, for the plots of BENCHMARKS.md, in a
# virtual environment of its own (.build/bench-venv, Debian's python3 and python3-venv). Nothing is installed into
# the system's Python, and `make test` never runs this. Idempotent: a venv that already imports matplotlib is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${BENCH_VENV:-.build/bench-venv}
# Any 3.x from 3.8 on draws the same figures (the committed plots were made with 3.11.2).
MATPLOTLIB=${BENCH_MATPLOTLIB:-matplotlib>=3.8,<4}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then exit 0; fi
if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "bench deps: python3-venv missing; run as root (or: apt-get install python3-venv)" >&2
    exit 1
  fi
  echo "installing: python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
rm -rf "$VENV"
/usr/bin/python3 -m venv "$VENV"
echo "installing into $VENV: $MATPLOTLIB"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "$MATPLOTLIB"
"$VENV/bin/python" -c 'import matplotlib; print("bench deps: matplotlib", matplotlib.__version__)'
