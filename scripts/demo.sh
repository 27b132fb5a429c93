#!/usr/bin/env bash
# weir demo: everything happens inside throwaway network namespaces (198.18.0.0/15, 2001:db8::/32), deleted at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
WEIR="$PWD/.build/debug/weir"
PROBE="$PWD/Tests/WeirKernelTests/Support/probe.py"
POD="weir-demo-pod-$$"
STATE=$(mktemp -d)
PEER="weir-demo-peer-$$"
[ "$(id -u)" = 0 ] || { echo "the demo creates network namespaces: run it as root" >&2; exit 1; }

# Every process the demo starts is remembered by its pid here; only those are ever signalled (a network namespace
# does not isolate process ids, so a match by name could hit an operator's own agent or a test).
PIDS=()
# A pid that has been waited for is forgotten: it may be reused by another process.
forget() { local q keep=(); for q in "${PIDS[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done; PIDS=("${keep[@]}"); }
# stop PID: SIGTERM to one process this demo started, then wait for it. Never an empty pid.
stop() {
  [ -n "${1:-}" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop "$pid"; done
  for ns in "$POD" "$PEER"; do ip netns delete "$ns" 2>/dev/null || true; done
}
trap 'cleanup; rm -rf "$STATE"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_pod() { ip netns exec "$POD" "$@"; }
in_peer() { ip netns exec "$PEER" "$@"; }

step "Two namespaces: a pod (198.18.0.1, 2001:db8::1) and a peer (198.18.0.2, 2001:db8::2)"
ip netns add "$POD"; ip netns add "$PEER"
ip link add eth0 netns "$POD" type veth peer name eth0 netns "$PEER"
in_pod ip addr add 198.18.0.1/24 dev eth0; in_pod ip addr add 2001:db8::1/64 dev eth0 nodad
in_peer ip addr add 198.18.0.2/24 dev eth0; in_peer ip addr add 2001:db8::2/64 dev eth0 nodad
for ns in "$POD" "$PEER"; do ip netns exec "$ns" ip link set lo up; ip netns exec "$ns" ip link set eth0 up; done

step "Probe listeners: the pod listens on 15001 (outbound capture), 15006 (inbound capture) and 8080 (its app)"
# ip netns exec execs the command, so $! is the probe's own pid.
ip netns exec "$POD" /usr/bin/python3 "$PROBE" serve pod 15001 15006 8080 >/dev/null &
probe_pod=$!; PIDS+=("$probe_pod")
ip netns exec "$PEER" /usr/bin/python3 "$PROBE" serve peer 80 >/dev/null &
PIDS+=("$!")
sleep 1

FLAGS=(-b '*' -i '*' -d 15090,15021)
step "weir rules --dry-run ${FLAGS[*]}  (the sidecar setup; prints nft text, changes nothing)"
in_pod "$WEIR" rules --dry-run "${FLAGS[@]}"

step "weir rules ${FLAGS[*]}  (one netlink batch)"
in_pod "$WEIR" rules "${FLAGS[@]}"
step "Again: nothing to do"
in_pod "$WEIR" rules "${FLAGS[@]}"

step "An app (uid 1000) in the pod calls the peer: captured to 15001, original destination recovered"
in_pod setpriv --reuid=1000 --regid=1000 --clear-groups /usr/bin/python3 "$PROBE" connect 198.18.0.2 80
in_pod setpriv --reuid=1000 --regid=1000 --clear-groups /usr/bin/python3 "$PROBE" connect 2001:db8::2 80
step "The proxy (uid 1337) calls the peer: not captured (no loop)"
in_pod setpriv --reuid=1337 --regid=1337 --clear-groups /usr/bin/python3 "$PROBE" connect 198.18.0.2 80
step "The peer calls the pod's app on 8080: captured to 15006"
in_peer /usr/bin/python3 "$PROBE" connect 198.18.0.1 8080

step "Bad input: one line, exit 2, nothing changed"
in_pod "$WEIR" rules -b '*' -x 198.18.0.1/16 || echo "exit status $?"

step "weir run: the agent. It re-claims the table, proxies on 15001/15006, serves health and metrics"
stop "$probe_pod"   # the pod's probe listener gives 15001/15006 to the agent
ip netns exec "$POD" "$WEIR" run "${FLAGS[@]}" --profile default --profiles-dir profiles --state-dir "$STATE" \
  --drain-timeout 3s 2> "$STATE/agent.log" > /dev/null &
agent=$!; PIDS+=("$agent")
for _ in $(seq 50); do grep -q event=ready "$STATE/agent.log" 2>/dev/null && break; sleep 0.2; done
sed 's/^/  /' "$STATE/agent.log"
step "The app calls the peer again: now the proxy carries it to where it was going"
in_pod setpriv --reuid=1000 --regid=1000 --clear-groups /usr/bin/python3 "$PROBE" connect 198.18.0.2 80
in_pod setpriv --reuid=1000 --regid=1000 --clear-groups /usr/bin/python3 "$PROBE" connect 2001:db8::2 80
step "GET /readyz and a few lines of /metrics"
get() { in_pod /usr/bin/python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:15020$1').read().decode(), end='')"; }
get /readyz
get /metrics | grep -E '^weir_(proxy_connections_(accepted_total|active)|ready|conntrack_usage_ratio|nftables_table_owned|proxy_workers) '
step "SIGTERM: bounded drain, exit 0; the table persists"
kill -TERM "$agent"
rc=0; wait "$agent" || rc=$?
forget "$agent"
tail -n 3 "$STATE/agent.log" | sed 's/^/  /'
echo "  weir run exited $rc"
in_pod nft list tables
step "weir tune --revert: put back what the agent's profile changed (inside the pod namespace only)"
in_pod "$WEIR" tune --revert --state-dir "$STATE"

step "weir clean: removes weir's table and routing, nothing else"
in_pod "$WEIR" clean
in_pod nft list ruleset
echo "(empty ruleset)"
step "Done; namespaces are deleted on exit"
