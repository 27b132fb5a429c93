#!/usr/bin/env bash
# `make bench`: weir against HAProxy (splice, transparent `server orig 0.0.0.0:0`, same thread count) and against a
# direct connection without proxy. Loopback in a throwaway network namespace, REDIRECT capture; every number in the
# table is measured in this run. Each measure lasts BENCH_SECONDS (default 3); the namespace is always deleted.
set -euo pipefail
cd "$(dirname "$0")/.."

WEIR=${WEIR:-.build/release/weir}
SECS=${BENCH_SECONDS:-3}
HOLD=${BENCH_HOLD_CONNECTIONS:-7500}   # 10,000 does not fit: HAProxy needs 2.5 descriptors per connection (pipes), limit 20,000
THREADS=${BENCH_THREADS:-$(nproc)}
NS=wtp-bench-$$
WORK=$(mktemp -d /tmp/wtp-bench.XXXXXX)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
in_ns() { ip netns exec "$NS" "$@"; }
bg_ns() { ip netns exec "$NS" "$@" & pids+=($!); }

[ -x "$WEIR" ] || { echo "bench: $WEIR missing; run 'make bench'" >&2; exit 1; }
gcc -O2 -o "$WORK/pingpong" scripts/bench/pingpong.c

ip netns add "$NS"
in_ns ip link set lo up
in_ns ip addr add 198.18.0.1/32 dev lo
# Per-namespace sysctls: tens of thousands of short connections per run must not exhaust ephemeral ports
# (TIME_WAIT) for the measures that follow.
in_ns sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1

# Upstreams: iperf3 (bulk), nginx (new connections), echo (latency, idle connections).
bg_ns iperf3 -s -B 198.18.0.1 -p 8080 >/dev/null 2>&1
cat >"$WORK/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $WORK/nginx.pid; error_log stderr crit;
events { worker_connections 16384; }
http { access_log off; client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  server { listen 198.18.0.1:8081 backlog=4096; location / { return 200 "ok\n"; } } }
NGINX
bg_ns nginx -c "$WORK/nginx.conf" -e stderr
bg_ns sh -c "ulimit -n 20000; exec $WORK/pingpong server 8082 198.18.0.1"

cat >"$WORK/haproxy.cfg" <<HAP
global
  nbthread $THREADS
  uid 1337
  gid 1337
  maxconn $((HOLD + 400))
defaults
  mode tcp
  maxconn $((HOLD + 400))
  timeout connect 5s
  timeout client 1h
  timeout server 1h
  option splice-auto
listen outbound
  bind 0.0.0.0:15001
  server orig 0.0.0.0:0
HAP

capture_on() {
  in_ns nft -f - <<NFT
table inet wtbench {
  chain output {
    type nat hook output priority -100; policy accept;
    meta skuid != 1337 tcp dport { 8080, 8081, 8082 } redirect to :15001
  }
}
NFT
}
capture_off() { in_ns nft delete table inet wtbench 2>/dev/null || true; }

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

wait_port() {
  for _ in $(seq 100); do in_ns ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "bench: nothing listens on port $1" >&2; exit 1
}

declare -A R
measure() { # name
  local t=$1
  R[$t,iperf1]=$(in_ns iperf3 -c 198.18.0.1 -p 8080 -t "$SECS" -P 1 -J \
    | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
  R[$t,iperf8]=$(in_ns iperf3 -c 198.18.0.1 -p 8080 -t "$SECS" -P 8 -J \
    | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
  R[$t,cps]=$(in_ns wrk -t1 -c32 -d"${SECS}s" -H "Connection: close" http://198.18.0.1:8081/ \
    | awk '/Requests\/sec/ {printf "%d", $2}')
  local rr
  rr=$(in_ns "$WORK/pingpong" rr 198.18.0.1 8082 "$SECS")
  R[$t,p50]=$(sed 's/.*rtt_p50_us=\([0-9.]*\).*/\1/' <<<"$rr")
  R[$t,p99]=$(sed 's/.*rtt_p99_us=\([0-9.]*\).*/\1/' <<<"$rr")
}

measure_memory() { # name pid
  local t=$1 pid=$2 before after hold
  R[$t,rss]=${R[$t,rss]:-$(rss_kb "$pid")}
  before=$(rss_kb "$pid")
  ip netns exec "$NS" sh -c "ulimit -n 20000; exec $WORK/pingpong hold 198.18.0.1 8082 $HOLD" >"$WORK/hold.out" 2>&1 &
  hold=$!
  for _ in $(seq 600); do grep -q HELD "$WORK/hold.out" && break; sleep 0.05; done
  sleep 0.5
  after=$(rss_kb "$pid")
  kill "$hold"; wait "$hold" 2>/dev/null || true
  R[$t,perconn]=$(python3 -c "print('%.2f' % (($after - $before) * 1024 / $HOLD / 1024))")
  if ! grep -q HELD "$WORK/hold.out"; then
    R[$t,perconn]="n/a"
    echo "bench: $t: could not hold $HOLD connections: $(tail -c 300 "$WORK/hold.out")" >&2
    [ "$t" = haproxy ] && tail -5 "$WORK/haproxy.log" >&2
    in_ns ss -s >&2
  fi
}

wait_port 8080; wait_port 8081; wait_port 8082
echo "bench: $THREADS threads, ${SECS}s per measure, idle connections: $HOLD" >&2

echo "bench: direct" >&2
measure direct

capture_on
echo "bench: weir" >&2
ip netns exec "$NS" sh -c "ulimit -n 20000; exec $WEIR proxy --workers $THREADS --max-connections $((HOLD + 500)) ${BENCH_WEIR_FLAGS:-}" \
  2>"$WORK/weir.log" &
weir=$!
wait_port 15001
sleep 0.5
R[weir,rss]=$(rss_kb "$weir")
measure weir
sleep 1
measure_memory weir "$weir"
kill -TERM "$weir"; wait "$weir" || true
sleep 1

echo "bench: haproxy" >&2
ip netns exec "$NS" sh -c "ulimit -n 20000; exec haproxy -db -f $WORK/haproxy.cfg" 2>"$WORK/haproxy.log" &
hap=$!
wait_port 15001
sleep 0.5
R[haproxy,rss]=$(rss_kb "$hap")
measure haproxy
sleep 1
measure_memory haproxy "$hap"
kill -TERM "$hap"; wait "$hap" || true
capture_off

ratio() { python3 -c "a,b='$1','$2'; print('%.2f' % (float(a)/float(b)) if b not in ('','0','n/a') and a not in ('','n/a') else 'n/a')"; }
status() { # value target higher|lower
  python3 -c "v,t,d='$1',float('$2'),'$3'
try: v=float(v)
except ValueError: print('?'); raise SystemExit
print('met' if (v>=t if d=='higher' else v<=t) else 'NOT MET')" 2>/dev/null || echo '?'
}

printf '\n| measure | direct | weir | HAProxy | weir/HAProxy | weir/direct | target | status |\n'
printf '|---|---|---|---|---|---|---|---|\n'
row() { # label key unit target-ratio direction
  local r; r=$(ratio "${R[weir,$2]}" "${R[haproxy,$2]}")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "${R[direct,$2]:-n/a}" "${R[weir,$2]}" "${R[haproxy,$2]}" \
    "$r" "$(ratio "${R[weir,$2]}" "${R[direct,$2]:-}")" "$3" "$(status "$r" "$4" "$5")"
}
row "throughput 1 stream (Gb/s)" iperf1 "≥ 1.2× HAProxy" 1.2 higher
row "throughput 8 streams (Gb/s)" iperf8 "≥ 1.2× HAProxy" 1.2 higher
row "new connections/s (wrk, Connection: close)" cps "≥ 1.2× HAProxy" 1.2 higher
row "1 KiB ping-pong p50 (µs)" p50 "(info)" 1e9 lower
row "1 KiB ping-pong p99 (µs)" p99 "≤ HAProxy" 1.0 lower
printf '| idle RSS (KiB) | - | %s | %s | %s | - | < 10240 KiB | %s |\n' "${R[weir,rss]}" "${R[haproxy,rss]}" \
  "$(ratio "${R[weir,rss]}" "${R[haproxy,rss]}")" "$(status "${R[weir,rss]}" 10240 lower)"
printf '| extra RSS per idle connection at %s (KiB) | - | %s | %s | %s | - | < 2 KiB | %s |\n' "$HOLD" \
  "${R[weir,perconn]}" "${R[haproxy,perconn]}" "$(ratio "${R[weir,perconn]}" "${R[haproxy,perconn]}")" \
  "$(status "${R[weir,perconn]}" 2 lower)"
