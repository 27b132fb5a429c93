#!/usr/bin/env bash
# The alerts and the dashboard, checked: promtool check/test of deploy/prometheus/weir-rules.yaml (fixtures in
# weir-rules.test.yaml), the PrometheusRule form (deploy/kubernetes/prometheusrule.yaml) equal to it, and every metric
# name an alert or a dashboard query uses present in a real agent's /metrics (`weir run`, then `weir run --pod-mode`
# with a pod, in throwaway network namespaces, addresses from 198.18.0.0/15 only; needs root). `--write` regenerates
# the PrometheusRule form.
# The binary: WEIR_BIN, else .build/debug/weir. Prints one line per check and "alerts: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/test-helpers/cni.sh
rules=deploy/prometheus/weir-rules.yaml
tests=deploy/prometheus/weir-rules.test.yaml
promrule=deploy/kubernetes/prometheusrule.yaml
dashboard=deploy/grafana/weir-dashboard.json
helper=scripts/test-helpers/alerts_check.py
py=/usr/bin/python3

if [ "${1:-}" = --write ]; then
  $py $helper prometheusrule $rules > $promrule && echo "wrote $promrule"
  exit
fi

passed=0; failed=0; skipped=0
check() { local name=$1; shift; if out=$("$@" 2>&1); then echo "ok   $name"; passed=$((passed+1)); else echo "FAIL $name"; echo "$out" | sed 's/^/     /'; failed=$((failed+1)); fi; }
skip() { echo "skip $1"; skipped=$((skipped+1)); }

check "promtool check rules $rules" promtool check rules $rules
check "promtool test rules $tests" promtool test rules $tests
check "$promrule carries the groups of $rules" $py $helper same $rules $promrule
check "$dashboard is JSON with a query in every panel" $py -c '
import json, sys
d = json.load(open(sys.argv[1]))
empty = [p["title"] for p in d["panels"] if not [t for t in p.get("targets", []) if t.get("expr")]]
sys.exit(f"panels without a query: {empty}" if empty else 0)' $dashboard

# The exposition of a real agent: a host-mode one (its capture, proxy and node series), then a pod-mode one serving a
# pod that the CNI plugin attached (the weir_pod_* series exist only per attached pod). Both in throwaway namespaces.
live_names() {
  local bin=${WEIR_BIN:-$PWD/.build/debug/weir} ns="wtc-$$-alerts" podns="wtc-$$-pod" dir pid="" rc=1
  [ -x "$bin" ] || { echo "no weir binary at $bin (build first, or set WEIR_BIN)"; return 1; }
  dir=$(mktemp -d)
  # Whatever happens, the agent (by its own pid) and the namespaces go.
  stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
  cleanup() { stop; ip netns del "$ns" 2>/dev/null; ip netns del "$podns" 2>/dev/null; rm -rf "$dir"; }
  scrape() { # file: the agent's /metrics, appended
    ip netns exec "$ns" $py -c '
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:15020/metrics", timeout=5).read().decode())' \
      >> "$1" 2>"$dir/scrape.err" ||
      { echo "no /metrics from the agent:"; cat "$dir/scrape.err" "$dir/agent.log"; return 1; }
  }
  ready() { for _ in $(seq 100); do grep -q "event=ready" "$dir/agent.log" && return 0; sleep 0.1; done
    echo "the agent never became ready:"; cat "$dir/agent.log"; return 1; }
  ip netns add "$ns" || { rm -rf "$dir"; return 1; }
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" "$bin" run -i 198.18.0.0/15 -b '*' --workers 1 --drain-timeout 1s >"$dir/agent.log" 2>&1 &
  pid=$!
  if ready && scrape "$dir/metrics"; then
    stop
    ip netns add "$podns" && ip netns exec "$podns" ip link set lo up
    ip netns exec "$ns" "$bin" run --pod-mode --run-dir "$dir/run" --state-dir "$dir/state" -i 198.18.0.0/15 -b '*' \
      --workers 1 --drain-timeout 1s >"$dir/agent.log" 2>&1 &
    pid=$!
    if ready && cni_add "$bin" "$ns" "$dir/run/cni.sock" "/run/netns/$podns" c-alerts alerts p u >"$dir/add.out"; then
      scrape "$dir/metrics" && $py $helper unknown "$dir/metrics" $rules $dashboard && rc=0
    else
      echo "the pod-mode agent did not serve a pod:"; cat "$dir/add.out" "$dir/agent.log"
    fi
  fi
  cleanup
  return $rc
}
if [ "$(id -u)" = 0 ]; then
  check "every metric in $rules and $dashboard is in a real agent's /metrics" live_names
else
  skip "metric names against a real agent (needs root for a network namespace)"
fi
echo "alerts: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
