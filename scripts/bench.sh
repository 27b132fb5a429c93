#!/usr/bin/env bash
# `make bench`: weir against HAProxy (splice, transparent `server orig 0.0.0.0:0`, same thread count) and against a
# direct connection without proxy, then the capture benchmark (scripts/bench-capture.sh), then the report
# (scripts/bench/report.py): BENCHMARKS.md and the plots in docs/bench/. Loopback in a throwaway network namespace,
# REDIRECT capture; every number is measured in this run. Each measure lasts BENCH_SECONDS (default 2), repeated
# BENCH_ROUNDS times (default 5) with the three targets interleaved; the report gives medians. The namespaces are
# always deleted, and only processes started here are ever signalled.
#
# Raw samples go to BENCH_OUT (default .build/bench): proxy.tsv (round, target, metric, value), capture.tsv and
# meta.tsv. BENCHMARKS.md and docs/bench/*.png are written under BENCH_REPORT_DIR (default: the repository);
# BENCH_REPORT=0 measures only. BENCH_CAPTURE=0 skips the capture benchmark (the report then says so).
#
# The run records `git describe --always --dirty` (meta.tsv: describe), and BENCHMARKS.md names it. Writing the
# committed report (BENCHMARKS.md and docs/bench/ of this repository, the default) from a tree with uncommitted
# changes to tracked files is refused before anything is measured, because its figures would belong to no commit:
# commit first, or write the report elsewhere (BENCH_REPORT_DIR=/tmp/b), or BENCH_ALLOW_DIRTY=1 to write it anyway
# (the report then says "-dirty").
#
# Syscalls per proxied connection: after the rounds, strace -c is attached to each long-running proxy while wrk
# (`Connection: close`) runs through it (scripts/bench/syscalls.sh); a measure that counted no connection or no
# syscall fails the bench.
#
# Memory is read as the user pays it: each fresh start is read idle, then put under a load phase (8 iperf3 streams,
# wrk with `Connection: close`, the 1 KiB ping-pong, BENCH_LOAD_SECONDS each, default BENCH_SECONDS) through a veth
# to a peer namespace, and read again: VmRSS, RssAnon (/proc/PID/status), Rss and Pss (/proc/PID/smaps_rollup).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench/syscalls.sh

WEIR=${WEIR:-.build/dist/weir}   # make bench: the stripped release binary make install ships
SECS=${BENCH_SECONDS:-2}
ROUNDS=${BENCH_ROUNDS:-5}
STREAMS=${BENCH_STREAMS:-1 2 4 8 16}
# Concurrent idle connections at which the proxies' RSS is read. 10,000 does not fit: HAProxy needs 2.5
# descriptors per connection (pipes), and the hard limit here is 20,000.
HOLD_STEPS=${BENCH_HOLD_STEPS:-1000 2500 5000 7500}
HOLD=${HOLD_STEPS##* }
IDLE_STARTS=${BENCH_IDLE_STARTS:-3}
THREADS=${BENCH_THREADS:-$(nproc)}
LOAD_SECS=${BENCH_LOAD_SECONDS:-$SECS}
OUT=${BENCH_OUT:-.build/bench}
PY=${BENCH_PYTHON:-.build/bench-venv/bin/python}
REPORT_DIR=${BENCH_REPORT_DIR:-.}
DESCRIBE=$(git describe --always --dirty 2>/dev/null || echo unknown)
if [ "${BENCH_REPORT:-1}" != 0 ] && [ "$(realpath -m "$REPORT_DIR")" = "$(realpath .)" ] \
  && [ "${BENCH_ALLOW_DIRTY:-0}" != 1 ]; then
  case $DESCRIBE in
    unknown | *-dirty)
      echo "bench: refusing to write the committed BENCHMARKS.md and docs/bench from a tree that is not a clean" \
        "commit (git describe --dirty: $DESCRIBE). Commit first, or set BENCH_REPORT_DIR=/tmp/b (report elsewhere)," \
        "BENCH_REPORT=0 (measure only) or BENCH_ALLOW_DIRTY=1 (write it anyway; it then says -dirty)." >&2
      exit 1 ;;
  esac
fi
NS=wtp-bench-$$
IDLE_NS=wtp-benchidle-$$
IDLE_PEER=wtp-benchpeer-$$
WORK=$(mktemp -d /tmp/wtp-bench.XXXXXX)
pids=()

# Signals one process this script started, reaps it and forgets its pid (so no later cleanup can hit a reused pid).
stop_pid() {
  local p keep=()
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  for ns in "$NS" "$IDLE_NS" "$IDLE_PEER"; do
    # Anything still in our namespaces was started by this script (clients left by an interrupted measure).
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
in_ns() { ip netns exec "$NS" "$@"; }
bg_ns() { ip netns exec "$NS" "$@" & pids+=($!); }

[ -x "$WEIR" ] || { echo "bench: $WEIR missing; run 'make bench'" >&2; exit 1; }
WEIR=$(realpath "$WEIR")
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
gcc -O2 -o "$WORK/pingpong" scripts/bench/pingpong.c

# How busy the machine is before anything of ours runs: the share of CPU time idle over 5 s (/proc/stat). The
# report marks a run measured on a busy machine.
cpu_idle_share() {
  local a b
  a=($(awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat)); sleep "${1:-5}"
  b=($(awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat))
  python3 -c "print('%.2f' % ((${b[1]} - ${a[1]}) / max(1, ${b[0]} - ${a[0]})))"
}
{
  printf 'started\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'started_epoch\t%s\n' "$(date +%s)"
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'cpus\t%s\n' "$(nproc)"
  printf 'cpu_model\t%s\n' "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  printf 'commit\t%s\n' "$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  printf 'describe\t%s\n' "$DESCRIBE"
  printf 'dirty\t%s\n' "$(case $DESCRIBE in *-dirty) echo yes ;; unknown) echo unknown ;; *) echo no ;; esac)"
  if [ "${BENCH_ALLOW_DIRTY:-0}" = 1 ]; then printf 'allow_dirty\t1\n'; fi
  printf 'weir_version\t%s\n' "$("$WEIR" --version 2>&1 | head -1)"
  printf 'weir_binary\t%s\n' "$(realpath --relative-to=. "$WEIR")"
  printf 'haproxy_version\t%s\n' "$(haproxy -v 2>&1 | head -1 | sed 's/ - http.*//')"
  printf 'seconds\t%s\n' "$SECS"
  printf 'rounds\t%s\n' "$ROUNDS"
  printf 'threads\t%s\n' "$THREADS"
  printf 'streams\t%s\n' "$STREAMS"
  printf 'hold_steps\t%s\n' "$HOLD_STEPS"
  printf 'idle_starts\t%s\n' "$IDLE_STARTS"
  printf 'load_seconds\t%s\n' "$LOAD_SECS"
  printf 'load_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  # The kernel's tick rate, as configured (the kernel's own config, if it is readable) and as measured: how far
  # jiffies (/proc/timer_list, root only) advance in the 5 s of the idle sample below.
  # From the same config: whether softirq time is charged to the interrupted process (tick-based accounting, no
  # CONFIG_IRQ_TIME_ACCOUNTING), which the measure of other processes' CPU below relies on.
  for f in "/boot/config-$(uname -r)" /proc/config.gz; do
    [ -r "$f" ] || continue
    hz=$(zcat -f "$f" | sed -n 's/^CONFIG_HZ=\([0-9]*\)$/\1/p')
    [ -n "$hz" ] || continue
    printf 'config_hz\t%s\nconfig_hz_source\t%s\n' "$hz" "$f"
    printf 'irq_time_accounting\t%s\n' "$(zcat -f "$f" | grep -q '^CONFIG_IRQ_TIME_ACCOUNTING=y' && echo y || echo n)"
    break
  done
  j0=$(awk '/^jiffies:/ {print $2; exit}' /proc/timer_list 2>/dev/null || true); t0=$(date +%s.%N)
  printf 'idle_share_before\t%s\n' "$(cpu_idle_share 5)"
  j1=$(awk '/^jiffies:/ {print $2; exit}' /proc/timer_list 2>/dev/null || true); t1=$(date +%s.%N)
  if [ -n "$j0" ] && [ -n "$j1" ]; then
    printf 'jiffies_hz\t%s\n' "$(python3 -c "print('%.1f' % (($j1 - $j0) / ($t1 - $t0)))")"
    printf 'jiffies_seconds\t%s\n' "$(python3 -c "print('%.1f' % ($t1 - $t0))")"
  fi
} > "$OUT/meta.tsv"
# How busy the machine is while the bench runs. /proc/stat gives the whole machine's CPU time by kind; this script's
# own process and everything it started and reaped (its children's times, /proc/$$/stat fields 14-17) are taken
# out; what remains is other processes', in user time (user + nice) and in system time (system + irq + softirq).
# On a kernel without CONFIG_IRQ_TIME_ACCOUNTING (recorded above; this machine's) the softirq work of the bench's own
# loopback traffic is charged to the process it interrupted, one of ours, so it is taken out with it. Kernel threads
# (kthreadd's children: ksoftirqd, kworkers) are counted as other processes, and given on their own as well: they
# also run some of the bench's own work (deferred softirqs, namespace teardown). Everything in USER_HZ ticks.
cpu_snapshot() { # prints: machine_user machine_system total own_user own_system kernel_threads (pid:start=ticks,...)
  python3 - "$$" <<'PY'
import os, sys
def stat(pid):
    with open("/proc/%s/stat" % pid) as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()   # [0] is field 3 of proc(5), the state
cpu = [int(v) for v in open("/proc/stat").readline().split()[1:9]]   # user nice system idle iowait irq softirq steal
own = stat(sys.argv[1])
kthreads = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            f = stat(pid)
        except OSError:
            continue
        if pid == "2" or f[1] == "2":
            kthreads.append("%s:%s=%d" % (pid, f[19], int(f[11]) + int(f[12])))
print(cpu[0] + cpu[1], cpu[2] + cpu[5] + cpu[6], sum(cpu), int(own[11]) + int(own[13]), int(own[12]) + int(own[14]),
      ",".join(kthreads) or "-")
PY
}
# meta.tsv lines: shares of all the machine's CPU time during the run (/proc/stat's total, idle and steal included).
cpu_shares() { # start-snapshot end-snapshot
  python3 - "$1" "$2" <<'PY'
import sys
a, b = (s.split() for s in sys.argv[1:3])
d = [int(y) - int(x) for x, y in zip(a[:5], b[:5])]
user, system, total, own_user, own_system = d
k0 = dict(e.split("=") for e in a[5].split(",") if "=" in e)
k1 = dict(e.split("=") for e in b[5].split(",") if "=" in e)
# Kernel threads alive at the end: their time since the start (all of it for those started since).
kthreads = sum(int(v) - int(k0.get(k, 0)) for k, v in k1.items())
total = max(total, 1)
for key, v in (("own_share", own_user + own_system), ("other_user_share", user - own_user),
               ("other_system_share", system - own_system), ("kthread_share", kthreads)):
    print("%s\t%.4f" % (key, v / total))
PY
}
cpu_start=$(cpu_snapshot)
: > "$OUT/proxy.tsv"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$OUT/proxy.tsv"; }   # round target metric value

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

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system of all threads, 1/100 s
lo_segments() { in_ns cat /sys/class/net/lo/statistics/tx_packets; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }        # pid field (KiB)
rollup_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup"; }  # pid field (KiB)

wait_port() { # port [namespace]
  for _ in $(seq 200); do ip netns exec "${2:-$NS}" ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done
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

calc() { python3 -c "print($1)"; }

measure() { # round target
  local r=$1 t=$2 pid="" c0 out n0 s0 n rr
  [ "$t" = weir ] && pid=$weir
  [ "$t" = haproxy ] && pid=$hap
  # Bulk: iperf3 with 1, 2, 4, 8, 16 streams; bytes received, and the proxy's CPU during the run.
  for p in $STREAMS; do
    [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
    out=$(client "$t" iperf3 -c 198.18.0.1 -p @P@080 -t "$SECS" -P "$p" -J \
      | python3 -c 'import json, sys
s = json.load(sys.stdin)["end"]["sum_received"]
print(s["bits_per_second"] / 1e9, s["bytes"])')
    record "$r" "$t" "gbps_$p" "${out% *}"
    record "$r" "$t" "bytes_$p" "${out#* }"
    [ -n "$pid" ] && record "$r" "$t" "cpu_s_$p" "$(calc "($(cpu_ticks "$pid") - $c0) / 100")"
  done
  # New connections: wrk with Connection: close. wrk runs under python3 only to learn its CPU time (getrusage of
  # the child); Debian's python3, which the proxy UID of the direct runs can execute.
  [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
  n0=$(cpu_ticks "$nginx_pid")
  s0=$(lo_segments)
  out=$(client "$t" /usr/bin/python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("client_cpu_seconds %.4f" % (r.ru_utime + r.ru_stime))' \
    wrk -t1 -c32 -d"${SECS}s" -H "Connection: close" http://198.18.0.1:@P@081/)
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  record "$r" "$t" conns "$n"
  record "$r" "$t" cps "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  # Per connection, during that same run: segments on loopback, CPU of the client (wrk) and server (nginx)
  # together, and CPU of the proxy process itself (user + system of all its threads).
  record "$r" "$t" segs "$(calc "($(lo_segments) - $s0) / $n")"
  record "$r" "$t" cscpu "$(calc "($(awk '/client_cpu_seconds/ {print $2}' <<<"$out") * 1e6 \
    + ($(cpu_ticks "$nginx_pid") - $n0) * 10000) / $n")"
  [ -n "$pid" ] && record "$r" "$t" cpuconn "$(calc "($(cpu_ticks "$pid") - $c0) * 10000 / $n")"
  # Latency: one connection, 1 KiB ping-pong.
  rr=$(client "$t" "$WORK/pingpong" rr 198.18.0.1 @P@082 "$SECS")
  for k in p50 p90 p99 p999; do
    record "$r" "$t" "$k" "$(sed "s/.*rtt_${k}_us=\([0-9.]*\).*/\1/" <<<"$rr")"
  done
}

# RSS against concurrent idle connections: one client opens HOLD_STEPS connections in steps (one 1 KiB round trip
# each) and waits at each for SIGUSR1 while the proxy's RSS is read.
# At each step: VmRSS (rss_at_N), and RssAnon, smaps_rollup's Rss and Pss (anon_at_N, smaps_rss_at_N, pss_at_N).
mem_at() { # target pid step
  record 0 "$1" "rss_at_$3" "$(rss_kb "$2")"
  record 0 "$1" "anon_at_$3" "$(status_kb "$2" RssAnon)"
  record 0 "$1" "smaps_rss_at_$3" "$(rollup_kb "$2" Rss)"
  record 0 "$1" "pss_at_$3" "$(rollup_kb "$2" Pss)"
}
measure_memory() { # target pid
  local t=$1 pid=$2 hold port=8082 step
  [ "$t" = haproxy ] && port=9082
  mem_at "$t" "$pid" 0
  : > "$WORK/hold.out"
  ip netns exec "$NS" sh -c "ulimit -n 20000; exec $WORK/pingpong hold 198.18.0.1 $port ${HOLD_STEPS// /,}" \
    >"$WORK/hold.out" 2>&1 &
  hold=$!
  for step in $HOLD_STEPS; do
    for _ in $(seq 1200); do
      grep -q "^HELD $step\$" "$WORK/hold.out" && break
      kill -0 "$hold" 2>/dev/null || break
      sleep 0.05
    done
    if ! grep -q "^HELD $step\$" "$WORK/hold.out"; then
      echo "bench: $t: could not hold $step connections: $(tail -c 300 "$WORK/hold.out")" >&2
      in_ns ss -s >&2
      break
    fi
    sleep 0.5
    mem_at "$t" "$pid" "$step"
    kill -USR1 "$hold"
  done
  kill "$hold" 2>/dev/null || true
  wait "$hold" 2>/dev/null || true
  sleep 2
}

# Memory of fresh starts, each in a namespace of its own: `weir proxy` and HAProxy as the bench runs them, and the
# node agent `weir run` with a capture installed (the binary's defaults otherwise). Read 1 s after the process
# listens (weir run: after /readyz answers 200), then again 1 s after a load phase: 8 iperf3 streams, wrk with
# `Connection: close` and the 1 KiB ping-pong, BENCH_LOAD_SECONDS each, from the namespace through its capture to
# servers in a peer namespace (a veth away, so `weir run`'s own rules capture it as they would a pod's traffic).
# What a user pays is the memory after load: code and data the idle process dropped or never touched come back.
readyz() {
  ip netns exec "$IDLE_NS" bash -c 'exec 3<>/dev/tcp/127.0.0.1/15020 && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 &&
    head -1 <&3' 2>/dev/null | grep -q " 200"
}
mem_record() { # round target prefix pid: VmRSS, RssAnon, RssFile (status), Rss and Pss (smaps_rollup), KiB
  record "$1" "$2" "$3_rss" "$(rss_kb "$4")"
  # Of which anonymous memory (heap, stacks) and file-backed pages (the binary's code and the shared libraries).
  record "$1" "$2" "$3_rss_anon" "$(status_kb "$4" RssAnon)"
  record "$1" "$2" "$3_rss_file" "$(status_kb "$4" RssFile)"
  record "$1" "$2" "$3_smaps_rss" "$(rollup_kb "$4" Rss)"
  record "$1" "$2" "$3_pss" "$(rollup_kb "$4" Pss)"
}
peer_pids=()
idle_peer_up() { # the peer namespace and its servers, once for every fresh start
  ip netns add "$IDLE_PEER"
  ip netns exec "$IDLE_PEER" ip link set lo up
  ip netns exec "$IDLE_PEER" ip addr add 198.18.1.2/32 dev lo
  # The upstreams' nginx.conf, listening on the peer's address only.
  sed -e "s|pid $WORK/nginx.pid|pid $WORK/nginx-peer.pid|" -e 's|listen 198\.18\.0\.1:9081 backlog=4096;||' \
    -e 's|198\.18\.0\.1:8081|198.18.1.2:8081|' "$WORK/nginx.conf" > "$WORK/nginx-peer.conf"
  ip netns exec "$IDLE_PEER" iperf3 -s -B 198.18.1.2 -p 8080 >/dev/null 2>&1 & peer_pids+=($!)
  ip netns exec "$IDLE_PEER" nginx -c "$WORK/nginx-peer.conf" -e stderr & peer_pids+=($!)
  ip netns exec "$IDLE_PEER" sh -c "exec $WORK/pingpong server 8082 198.18.1.2" & peer_pids+=($!)
  pids+=("${peer_pids[@]}")
  wait_port 8080 "$IDLE_PEER"; wait_port 8081 "$IDLE_PEER"; wait_port 8082 "$IDLE_PEER"
}
idle_n=0
idle_ns_up() { # port: a fresh namespace, a veth to the peer; without weir run's rules, ours to capture to port
  idle_n=$((idle_n + 1))
  ip netns add "$IDLE_NS"
  ip netns exec "$IDLE_NS" ip link set lo up
  ip netns exec "$IDLE_NS" ip addr add 198.18.0.1/32 dev lo
  ip link add eth0 netns "$IDLE_NS" type veth peer name "pod$idle_n" netns "$IDLE_PEER"
  ip netns exec "$IDLE_NS" ip addr add 198.18.1.1/24 dev eth0
  ip netns exec "$IDLE_NS" ip link set eth0 up
  ip netns exec "$IDLE_PEER" ip link set "pod$idle_n" up
  ip netns exec "$IDLE_PEER" ip route add 198.18.1.1/32 dev "pod$idle_n"
  ip netns exec "$IDLE_NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
  [ -n "$1" ] || return 0
  ip netns exec "$IDLE_NS" nft -f - <<NFT
table inet wtbench {
  chain output {
    type nat hook output priority -100; policy accept;
    meta skuid != 1337 ip daddr 198.18.1.2 tcp dport { 8080, 8081, 8082 } redirect to :$1
  }
}
NFT
}
idle_load() { # round target pid
  local c0 out n cpu
  c0=$(cpu_ticks "$3")
  ip netns exec "$IDLE_NS" iperf3 -c 198.18.1.2 -p 8080 -t "$LOAD_SECS" -P 8 >/dev/null ||
    { echo "bench: $2: iperf3 through it failed" >&2; exit 1; }
  out=$(ip netns exec "$IDLE_NS" wrk -t1 -c32 -d"${LOAD_SECS}s" -H "Connection: close" http://198.18.1.2:8081/)
  ip netns exec "$IDLE_NS" "$WORK/pingpong" rr 198.18.1.2 8082 "$LOAD_SECS" >/dev/null
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(($(cpu_ticks "$3") - c0))
  record "$1" "$2" load_requests "$n"
  record "$1" "$2" load_cpu_s "$(calc "$cpu / 100")"
  # The load must have gone through the process: connections made, and CPU time of its own (0.1 s at least).
  if [ "${n:-0}" -lt 1 ] || [ "$cpu" -lt 10 ]; then
    echo "bench: $2: the load phase did not go through it (wrk: ${n:-no} requests, its CPU: $((cpu * 10)) ms)" >&2
    exit 1
  fi
}
measure_idle() { # target command...
  local t=$1 p i port=; shift
  [ "$t" = weir-run ] || port=${IDLE_PORT:-15001}
  for i in $(seq "$IDLE_STARTS"); do
    idle_ns_up "$port"
    ip netns exec "$IDLE_NS" sh -c "ulimit -n 20000; exec $*" >"$WORK/idle.log" 2>&1 &
    p=$!
    pids+=("$p")
    if [ "$t" = weir-run ]; then
      for _ in $(seq 200); do readyz && break; sleep 0.05; done
      readyz || { echo "bench: weir run never became ready: $(tail -c 500 "$WORK/idle.log")" >&2; exit 1; }
    else
      wait_port "$port" "$IDLE_NS"
    fi
    sleep 1
    mem_record "$i" "$t" idle "$p"
    idle_load "$i" "$t" "$p"
    sleep 1
    if ! kill -0 "$p" 2>/dev/null; then
      echo "bench: $t exited during the load: $(tail -c 500 "$WORK/idle.log")" >&2
      exit 1
    fi
    mem_record "$i" "$t" load "$p"
    stop_pid "$p"
    ip netns del "$IDLE_NS"
    idle_ns_gone
  done
}
idle_ns_gone() { # the kernel tears a deleted namespace down in the background: wait until its veth has left the
  # peer, or the next start finds the old route to 198.18.1.1 still there (EEXIST)
  local _
  for _ in $(seq 200); do
    ip netns exec "$IDLE_PEER" ip link show "pod$idle_n" >/dev/null 2>&1 || return 0
    sleep 0.05
  done
  echo "bench: the namespace of start $idle_n still has its veth in the peer after 10 s" >&2
  exit 1
}

echo "bench: $THREADS threads, $ROUNDS rounds of ${SECS}s per measure, streams: $STREAMS," \
  "idle connections: $HOLD_STEPS" >&2
echo "bench: memory of fresh starts, idle and after ${LOAD_SECS}s load phases ($IDLE_STARTS each)" >&2
idle_peer_up
measure_idle weir-proxy "$WEIR" proxy --workers "$THREADS" --max-connections $((HOLD + 500))
measure_idle weir-run "$WEIR" run -i 198.18.0.0/15 --workers "$THREADS" --max-connections $((HOLD + 500))
IDLE_PORT=15002 measure_idle haproxy haproxy -db -f "$WORK/haproxy.cfg"
for p in "${peer_pids[@]}"; do stop_pid "$p"; done
ip netns del "$IDLE_PEER"

wait_port 8080; wait_port 9080; wait_port 8081; wait_port 8082; wait_port 9082
ip netns exec "$NS" sh -c "ulimit -n 20000; exec $WEIR proxy --workers $THREADS \
  --max-connections $((HOLD + 500)) ${BENCH_WEIR_FLAGS:-}" 2>"$WORK/weir.log" &
weir=$!
pids+=("$weir")
ip netns exec "$NS" sh -c "ulimit -n 20000; exec haproxy -db -f $WORK/haproxy.cfg" 2>"$WORK/haproxy.log" &
hap=$!
pids+=("$hap")
wait_port 15001; wait_port 15002
sleep 0.5

for round in $(seq "$ROUNDS"); do
  for t in direct weir haproxy; do
    echo "bench: round $round: $t" >&2
    measure "$round" "$t"
  done
done
sleep 1
# Syscalls per proxied connection (scripts/bench/syscalls.sh): strace attached to each proxy under wrk.
for t in weir haproxy; do
  echo "bench: syscalls per connection: $t" >&2
  base=8; pid=$weir
  [ "$t" = haproxy ] && base=9 && pid=$hap
  counts=$(syscalls_per_connection "$NS" "$pid" "http://198.18.0.1:${base}081/")
  while IFS=$'\t' read -r metric value; do record 0 "$t" "$metric" "$value"; done <<<"$counts"
done
sleep 1
echo "bench: RSS against idle connections" >&2
measure_memory weir "$weir"
measure_memory haproxy "$hap"
printf 'proxy_finished_epoch\t%s\n' "$(date +%s)" >> "$OUT/meta.tsv"
cleanup
trap - EXIT

# Capture: apply time and per-connection cost of excluded CIDRs, weir against istio's iptables layout.
rm -f "$OUT/capture.tsv"   # no samples of an earlier run in this report
if [ "${BENCH_CAPTURE:-1}" != 0 ]; then
  WEIR="$WEIR" BENCH_OUT="$OUT" BENCH_QUIET=1 bash scripts/bench-capture.sh
fi
{
  printf 'finished_epoch\t%s\n' "$(date +%s)"
  printf 'load_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  cpu_shares "$cpu_start" "$(cpu_snapshot)"
} >> "$OUT/meta.tsv"

# Pod mode (scripts/bench/pods.sh): timed on its own (pods.tsv holds its start and end), after the run above.
rm -f "$OUT/pods.tsv"   # no samples of an earlier run in this report
if [ "${BENCH_PODS:-1}" != 0 ]; then WEIR="$WEIR" bash scripts/bench/pods.sh "$OUT"; fi
# The live handover (scripts/bench/handover.sh): 1,000 and 10,000 connections moved by weir run --takeover.
rm -f "$OUT/handover.tsv"
if [ "${BENCH_HANDOVER:-1}" != 0 ]; then WEIR="$WEIR" bash scripts/bench/handover.sh "$OUT"; fi

if [ "${BENCH_REPORT:-1}" != 0 ]; then
  [ -x "$PY" ] || { echo "bench: $PY missing (matplotlib): run 'make bench-deps'" >&2; exit 1; }
  "$PY" scripts/bench/report.py --data "$OUT" --out "${BENCH_REPORT_DIR:-.}"
fi
