#!/usr/bin/env bash
# Validates the node-service packaging: the systemd unit (systemd-analyze verify, against the built binary) and the
# Kubernetes manifest (kubernetes-validate, from PyPI). Prints one line per check and "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0; failed=0
check() { local name=$1; shift; if out=$("$@" 2>&1); then echo "ok   $name"; passed=$((passed+1)); else echo "FAIL $name"; echo "$out" | sed 's/^/     /'; failed=$((failed+1)); fi; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/weir|$PWD/.build/debug/weir|" systemd/weir.service > "$tmp/weir.service"
verify_unit() { local out; out=$(systemd-analyze verify "$tmp/weir.service" 2>&1); [ -z "$out" ] || { echo "$out"; return 1; }; }
check "systemd-analyze verify systemd/weir.service" verify_unit
if ! python3 -c "import kubernetes_validate" >/dev/null 2>&1; then
  python3 -m pip install -q kubernetes-validate >/dev/null 2>&1 || true
fi
check "kubernetes-validate deploy/kubernetes/daemonset.yaml" python3 -m kubernetes_validate --strict \
  deploy/kubernetes/daemonset.yaml
echo "packaging: $passed passed, $failed failed"
[ "$failed" = 0 ]
