#!/usr/bin/env bash
# docs/dashboard.png from real data: a real `weir run` in a throwaway network namespace under a short load (outbound
# and inbound connections, idle ones held open, a reload, two repairs, a 3 s stall of the workers that overflows the
# accept queue, then SIGTERM and a drain), scraped every 2 s by Debian's Prometheus (loopback of that namespace, temporary storage), then every
# query of deploy/grafana/weir-dashboard.json asked through Prometheus's HTTP API and drawn with matplotlib (Grafana
# is not packaged by Debian). Root; addresses from 198.18.0.0/15 only; everything is removed afterwards, also on
# failure. Not part of `make test`. WEIR_BIN (else .build/debug/weir), BENCH_VENV (else .build/bench-venv),
# LOAD_SECONDS (else 150), OUT (else docs/dashboard.png).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${WEIR_BIN:-$PWD/.build/debug/weir}
venv=${BENCH_VENV:-.build/bench-venv}
seconds=${LOAD_SECONDS:-150}
out=${OUT:-docs/dashboard.png}
[ -x "$bin" ] || { echo "no weir binary at $bin" >&2; exit 1; }
command -v prometheus >/dev/null || { echo "prometheus missing (apt-get install prometheus)" >&2; exit 1; }
BENCH_VENV=$venv bash scripts/bench/install-deps.sh
app=wtd-$$-app peer=wtd-$$-peer
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$app" 2>/dev/null || true
  ip netns del "$peer" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$app"; ip netns add "$peer"
ip link add wd$$a netns "$app" type veth peer name wd$$p netns "$peer"
ip -n "$app" addr add 198.18.9.1/24 dev wd$$a; ip -n "$peer" addr add 198.18.9.2/24 dev wd$$p
for ns in "$app" "$peer"; do ip -n "$ns" link set lo up; done
ip -n "$app" link set wd$$a up; ip -n "$peer" link set wd$$p up
# A small accept queue, so the stall below overflows it.
ip netns exec "$app" sysctl -qw net.core.somaxconn=16

server='
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1024)
def serve(c):
    try:
        while True:
            d = c.recv(4096)
            if not d: break
            c.sendall(d)
    except OSError: pass
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()'
ip netns exec "$peer" /usr/bin/python3 -c "$server" 8080 & pids+=($!)
ip netns exec "$app" /usr/bin/python3 -c "$server" 8081 & pids+=($!)

ip netns exec "$app" "$bin" run -i '*' -b 8081 --workers 2 --drain-timeout 30s >"$tmp/agent.log" 2>&1 & agent=$!
pids+=($agent)
for _ in $(seq 100); do grep -q event=ready "$tmp/agent.log" && break; sleep 0.1; done
grep -q event=ready "$tmp/agent.log" || { cat "$tmp/agent.log"; exit 1; }

cat > "$tmp/prometheus.yml" <<'YAML'
global: {scrape_interval: 2s, evaluation_interval: 2s}
scrape_configs:
  - job_name: weir
    static_configs: [{targets: ["127.0.0.1:15020"], labels: {instance: "node-a"}}]
YAML
ip netns exec "$app" prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
  --storage.tsdb.retention.time=1h --web.listen-address=127.0.0.1:19090 >"$tmp/prometheus.log" 2>&1 & pids+=($!)

# Load: each client opens a connection, sends a line, reads it back, closes, at RATE per second; 40 connections stay
# open and idle throughout. Outbound from the app (captured by -i '*'), inbound to its port 8081 (-b 8081).
load='
import socket, sys, time
host, port, rate, seconds, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
held = []
for _ in range(hold):
    try: held.append(socket.create_connection((host, port), timeout=5))
    except OSError: pass
end = time.time() + seconds
while time.time() < end:
    t = time.time()
    try:
        c = socket.create_connection((host, port), timeout=5); c.sendall(b"x" * 512); c.recv(4096); c.close()
    except OSError: pass
    time.sleep(max(0, 1 / rate - (time.time() - t)))'
start=$(date +%s)
ip netns exec "$app" /usr/bin/python3 -c "$load" 198.18.9.2 8080 150 "$seconds" 40 & pids+=($!)
ip netns exec "$app" /usr/bin/python3 -c "$load" 198.18.9.2 8080 150 "$seconds" 0 & pids+=($!)
ip netns exec "$peer" /usr/bin/python3 -c "$load" 198.18.9.1 8081 60 "$seconds" 0 & pids+=($!)
at() { sleep $(( start + $1 - $(date +%s) > 0 ? start + $1 - $(date +%s) : 0 )); }
at $((seconds / 4)); kill -HUP "$agent"                                          # a reload
at $((seconds * 2 / 5)); ip -n "$app" -6 addr del ::6/128 dev lo                 # a repair (the hand-off address)
at $((seconds / 2)); ip -n "$app" -6 addr del ::6/128 dev lo                     # and another
at $((seconds * 3 / 5))
# The workers stall for 3 s (ptrace, their threads only): connections pile up in the accept queues and overflow.
ip netns exec "$app" /usr/bin/python3 Tests/WeirKernelTests/Support/freeze_workers.py "$agent" > "$tmp/freeze.log" &
freezer=$!; pids+=($freezer); sleep 0.5
# 200 connects at once while nobody accepts.
ip netns exec "$app" /usr/bin/python3 -c '
import socket, time
socks = []
for _ in range(200):
    s = socket.socket(); s.setblocking(False)
    try: s.connect(("198.18.9.2", 8080))
    except BlockingIOError: pass
    socks.append(s)
time.sleep(6)' & pids+=($!)
sleep 2.5; kill "$freezer"; wait "$freezer" 2>/dev/null || true
grep -q frozen "$tmp/freeze.log" || { echo "the workers were not stopped: $(cat "$tmp/freeze.log")" >&2; exit 1; }
# SIGTERM while the 40 idle connections are still open: the drain gauges show them until the load ends.
at $((seconds - 15)); kill -TERM "$agent"
at $((seconds + 5))
end=$(date +%s)
ip netns exec "$app" "$venv/bin/python" scripts/dashboard_picture.py http://127.0.0.1:19090 \
  deploy/grafana/weir-dashboard.json "$((start - 5))" "$end" "$out"
echo "wrote $out"
