#!/usr/bin/env bash
# `make bench`: weir against HAProxy (splice, transparent `server orig 0.0.0.0:0`, same thread count) and against a
# direct connection without proxy. Loopback in a throwaway network namespace, REDIRECT capture; every number in the
# table is measured in this run. Each measure lasts BENCH_SECONDS (default 2), repeated BENCH_ROUNDS times (default 5)
# with the three targets interleaved; medians are reported. The namespace is always deleted.
set -euo pipefail
cd "$(dirname "$0")/.."

WEIR=${WEIR:-.build/dist/weir}   # make bench: the stripped release binary make install ships
SECS=${BENCH_SECONDS:-2}
ROUNDS=${BENCH_ROUNDS:-5}
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

# Upstreams: iperf3 (bulk), nginx (new connections), echo (latency, idle connections). Ports 8080-8082 are captured
# to weir (15001), ports 9080-9082 to HAProxy (15002): both run side by side and the measures alternate, round after
# round, so drift on this shared machine hits all three alike. "direct" is the client running as the proxy UID,
# which the capture rules let through untouched.
for p in 8080 9080; do bg_ns iperf3 -s -B 198.18.0.1 -p $p >/dev/null 2>&1; done
cat >"$WORK/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $WORK/nginx.pid; error_log stderr crit;
events { worker_connections 16384; }
http { access_log off; client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  server { listen 198.18.0.1:8081 backlog=4096; listen 198.18.0.1:9081 backlog=4096;
           location / { return 200 "ok\n"; } } }
NGINX
bg_ns nginx -c "$WORK/nginx.conf" -e stderr
nginx_pid=$!
for p in 8082 9082; do bg_ns sh -c "ulimit -n 20000; exec $WORK/pingpong server $p 198.18.0.1"; done

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
  bind 0.0.0.0:15002
  server orig 0.0.0.0:0
HAP

in_ns nft -f - <<NFT
table inet wtbench {
  chain output {
    type nat hook output priority -100; policy accept;
    meta skuid != 1337 tcp dport { 8080, 8081, 8082 } redirect to :15001
    meta skuid != 1337 tcp dport { 9080, 9081, 9082 } redirect to :15002
  }
}
NFT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
lo_segments() { in_ns cat /sys/class/net/lo/statistics/tx_packets; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

wait_port() {
  for _ in $(seq 100); do in_ns ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "bench: nothing listens on port $1" >&2; exit 1
}

# client TARGET CMD...: runs a client toward TARGET (direct | weir | haproxy); @P@ in the arguments becomes the
# port base (80/81/82 on 8xxx for weir and direct, 9xxx for HAProxy).
client() {
  local t=$1; shift
  local base=8 args=()
  [ "$t" = haproxy ] && base=9
  for a in "$@"; do args+=("${a//@P@/$base}"); done
  if [ "$t" = direct ]; then
    in_ns setpriv --reuid 1337 --regid 1337 --clear-groups "${args[@]}"
  else
    in_ns "${args[@]}"
  fi
}

declare -A R
add() { R[$1,$2]="${R[$1,$2]:-} $3"; }
median() { python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print('%.2f' % statistics.median(v) if v else 'n/a')" $1; }

measure() { # target
  local t=$1 rr
  add "$t" iperf1 "$(client "$t" iperf3 -c 198.18.0.1 -p @P@080 -t "$SECS" -P 1 -J \
    | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')"
  add "$t" iperf8 "$(client "$t" iperf3 -c 198.18.0.1 -p @P@080 -t "$SECS" -P 8 -J \
    | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')"
  local pid="" t0=0 n0 s0 out n
  [ "$t" = weir ] && pid=$weir
  [ "$t" = haproxy ] && pid=$hap
  [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  n0=$(cpu_ticks "$nginx_pid")
  s0=$(lo_segments)
  # wrk runs under python3 only to learn its CPU time (getrusage of the child); Debian's python3, which the proxy UID
  # of the direct runs can execute.
  out=$(client "$t" /usr/bin/python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("client_cpu_seconds %.4f" % (r.ru_utime + r.ru_stime))' \
    wrk -t1 -c32 -d"${SECS}s" -H "Connection: close" http://198.18.0.1:@P@081/)
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  add "$t" cps "$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")"
  # Per connection, during that same run: segments on loopback, CPU of the client (wrk) and server (nginx) together,
  # and CPU of the proxy process itself (user + system, 10 ms ticks).
  add "$t" segs "$(python3 -c "print('%.2f' % (($(lo_segments) - $s0) / $n))")"
  add "$t" cscpu "$(python3 -c "print('%.1f' % (($(awk '/client_cpu_seconds/ {print $2}' <<<"$out") * 1e6 \
    + ($(cpu_ticks "$nginx_pid") - $n0) * 10000) / $n))")"
  if [ -n "$pid" ]; then
    add "$t" cpuconn "$(python3 -c "print('%.1f' % (($(cpu_ticks "$pid") - $t0) * 10000 / $n))")"
  fi
  rr=$(client "$t" "$WORK/pingpong" rr 198.18.0.1 @P@082 "$SECS")
  add "$t" p50 "$(sed 's/.*rtt_p50_us=\([0-9.]*\).*/\1/' <<<"$rr")"
  add "$t" p99 "$(sed 's/.*rtt_p99_us=\([0-9.]*\).*/\1/' <<<"$rr")"
}

measure_memory() { # target pid
  local t=$1 pid=$2 before after hold port=8082
  [ "$t" = haproxy ] && port=9082
  before=$(rss_kb "$pid")
  ip netns exec "$NS" sh -c "ulimit -n 20000; exec $WORK/pingpong hold 198.18.0.1 $port $HOLD" >"$WORK/hold.out" 2>&1 &
  hold=$!
  for _ in $(seq 600); do grep -q HELD "$WORK/hold.out" && break; sleep 0.05; done
  sleep 0.5
  after=$(rss_kb "$pid")
  kill "$hold"; wait "$hold" 2>/dev/null || true
  R[$t,perconn]=$(python3 -c "print('%.2f' % (($after - $before) / $HOLD))")
  if ! grep -q HELD "$WORK/hold.out"; then
    R[$t,perconn]="n/a"
    echo "bench: $t: could not hold $HOLD connections: $(tail -c 300 "$WORK/hold.out")" >&2
    in_ns ss -s >&2
  fi
  sleep 2
}

wait_port 8080; wait_port 9080; wait_port 8081; wait_port 8082; wait_port 9082
ip netns exec "$NS" sh -c "ulimit -n 20000; exec $WEIR proxy --workers $THREADS --max-connections $((HOLD + 500)) ${BENCH_WEIR_FLAGS:-}" \
  2>"$WORK/weir.log" &
weir=$!
pids+=("$weir")
ip netns exec "$NS" sh -c "ulimit -n 20000; exec haproxy -db -f $WORK/haproxy.cfg" 2>"$WORK/haproxy.log" &
hap=$!
pids+=("$hap")
wait_port 15001; wait_port 15002
sleep 0.5
R[weir,rss]=$(rss_kb "$weir")
R[haproxy,rss]=$(rss_kb "$hap")
echo "bench: $THREADS threads, $ROUNDS rounds of ${SECS}s per measure, idle connections: $HOLD" >&2

for round in $(seq "$ROUNDS"); do
  for t in direct weir haproxy; do
    echo "bench: round $round: $t" >&2
    measure "$t"
  done
done
sleep 1
echo "bench: idle connections" >&2
measure_memory weir "$weir"
measure_memory haproxy "$hap"

for t in direct weir haproxy; do
  for k in iperf1 iperf8 cps segs cscpu cpuconn p50 p99; do
    echo "bench: raw $t $k:${R[$t,$k]:-}" >&2
    R[$t,$k]=$(median "${R[$t,$k]:-}")
  done
done

ratio() { python3 -c "a,b='$1','$2'; print('%.2f' % (float(a)/float(b)) if b not in ('','0','n/a') and a not in ('','n/a') else 'n/a')"; }
status() { # value target higher|lower; a target of 1e9 marks an informational row
  [ "$2" = 1e9 ] && { echo "-"; return; }
  python3 -c "v,t,d='$1',float('$2'),'$3'
try: v=float(v)
except ValueError: print('?'); raise SystemExit
print('met' if (v>=t if d=='higher' else v<=t) else 'NOT MET')" 2>/dev/null || echo '?'
}

printf '\nMedians of %s rounds, %ss each, %s threads; loopback in a namespace, REDIRECT.\n' "$ROUNDS" "$SECS" "$THREADS"
printf '\n| measure | direct | weir | HAProxy | weir/HAProxy | weir/direct | target | status |\n'
printf '|---|---|---|---|---|---|---|---|\n'
row() { # label key target threshold direction
  local r; r=$(ratio "${R[weir,$2]}" "${R[haproxy,$2]}")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "${R[direct,$2]:-n/a}" "${R[weir,$2]}" "${R[haproxy,$2]}" \
    "$r" "$(ratio "${R[weir,$2]}" "${R[direct,$2]:-}")" "$3" "$(status "$r" "$4" "$5")"
}
row "throughput 1 stream (Gb/s)" iperf1 "≥ 1.2× HAProxy" 1.2 higher
row "throughput 8 streams (Gb/s)" iperf8 "≥ 1.2× HAProxy" 1.2 higher
row "new connections/s (wrk, Connection: close)" cps "≥ 1.2× HAProxy" 1.2 higher
row "segments on loopback per new connection" segs "(info)" 1e9 lower
row "client + server CPU per new connection (µs, wrk + nginx)" cscpu "(info)" 1e9 lower
row "proxy CPU per new connection (µs, user+sys)" cpuconn "(info)" 1e9 lower
row "1 KiB ping-pong p50 (µs)" p50 "(info)" 1e9 lower
row "1 KiB ping-pong p99 (µs)" p99 "≤ HAProxy" 1.0 lower
printf '| idle RSS (KiB) | - | %s | %s | %s | - | < 10240 KiB | %s |\n' "${R[weir,rss]}" "${R[haproxy,rss]}" \
  "$(ratio "${R[weir,rss]}" "${R[haproxy,rss]}")" "$(status "${R[weir,rss]}" 10240 lower)"
printf '| extra RSS per idle connection at %s (KiB) | - | %s | %s | %s | - | < 2 KiB | %s |\n' "$HOLD" \
  "${R[weir,perconn]}" "${R[haproxy,perconn]}" "$(ratio "${R[weir,perconn]}" "${R[haproxy,perconn]}")" \
  "$(status "${R[weir,perconn]}" 2 lower)"

# The rate is bounded by the CPU all three processes share: connections/s ~ CPU / (client + server + proxy) per
# connection. What weir's own share would have to be for the 1.2x target, given the other shares of this run:
python3 -c "
cs_w, cs_h, p_w, p_h = (float(x) if x not in ('', 'n/a') else None for x in '${R[weir,cscpu]} ${R[haproxy,cscpu]} ${R[weir,cpuconn]} ${R[haproxy,cpuconn]}'.split())
if None not in (cs_w, cs_h, p_w, p_h):
    need = (cs_h + p_h) / 1.2 - cs_w
    print('\nnew connections/s: 1.2x HAProxy needs weir at <= %.1f us of CPU per connection (%.2fx HAProxy\'s %.1f); it used %.1f' % (need, need / p_h, p_h, p_w))
"

# Capture: applying 10,000 excluded CIDRs, and what they cost each new connection.
WEIR="$(realpath "$WEIR")" bash scripts/bench-capture.sh
