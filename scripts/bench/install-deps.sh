#!/usr/bin/env bash
# What `make bench` needs beyond scripts/install-deps.sh: matplotlib from PyPI, for the plots of BENCHMARKS.md, in a
# virtual environment of its own (.build/bench-venv; scripts/py-venv.sh). Nothing is installed into the system's
# Python, and `make test` never runs this. Idempotent: a venv that already imports matplotlib is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${BENCH_VENV:-.build/bench-venv}
# Any 3.x from 3.8 on draws the same figures (the committed plots were made with 3.11.2).
MATPLOTLIB=${BENCH_MATPLOTLIB:-matplotlib>=3.8,<4}
bash scripts/py-venv.sh "$VENV" matplotlib "$MATPLOTLIB"
"$VENV/bin/python" -c 'import matplotlib; print("bench deps: matplotlib", matplotlib.__version__)'
