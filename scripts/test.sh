#!/usr/bin/env bash
# The whole suite: pure unit tests and kernel tests (root, inside throwaway network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
# Packaging checks first, so the test runner's summary stays the last line.
bash scripts/check-packaging.sh
if [ "$(id -u)" != 0 ]; then
  echo "kernel tests need root (they create network namespaces); running pure tests only" >&2
  exec swift test --skip WeirKernelTests
fi
exec swift test --no-parallel
