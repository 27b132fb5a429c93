#!/usr/bin/env bash
# The whole suite: pure unit tests and kernel tests (root, inside throwaway network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
# Packaging checks first, so the test runner's summary stays the last line. WEIR_BIN (make test passes the
# production binary, .build/dist/weir) is what the .deb, the image and the systemd test ship.
bash scripts/check-packaging.sh
bash scripts/test-systemd.sh
# Every regression input the fuzzers found, then 3 s of each fuzz target (make fuzz runs them longer). Fixed seed.
FUZZ_SECONDS=3 FUZZ_SEED=1 bash scripts/fuzz.sh
# One Swift build at a time on the machine (a second worktree, CI): build under the shared lock, then test.
lock=(); command -v flock >/dev/null && lock=(flock /tmp/weir-swift-build.lock)
"${lock[@]}" swift build --build-tests
bash scripts/check-alerts.sh  # alert rules (promtool), PrometheusRule, dashboard metric names vs a real agent
if [ "$(id -u)" != 0 ]; then
  echo "kernel tests need root (they create network namespaces); running pure tests only" >&2
  exec swift test --skip-build --skip WeirKernelTests
fi
# Namespaces of test processes that were killed (named wt*-PID-*) are removed before the run.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^wt[a-z]*-[0-9]+-' || true); do
  pid=$(echo "$ns" | cut -d- -f2)
  if ! kill -0 "$pid" 2>/dev/null; then
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  fi
done
exec swift test --skip-build --no-parallel
