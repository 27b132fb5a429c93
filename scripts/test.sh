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
# Namespaces of test processes that were killed (named wt*-PID-*) are removed before the run.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^wt[a-z]*-[0-9]+-' || true); do
  pid=$(echo "$ns" | cut -d- -f2)
  if ! kill -0 "$pid" 2>/dev/null; then
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  fi
done
exec swift test --no-parallel
