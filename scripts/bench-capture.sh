#!/usr/bin/env bash
# Capture benchmark: how long excluded CIDRs take to apply, and what they cost each new connection, for weir (one
# set, over netlink: the IPv4 /32s are single addresses, a set without intervals; the IPv6 /64s an interval set),
# `nft -f` of weir's own dry-run text, and iptables-restore with one rule per CIDR (istio-iptables' layout). Runs in throwaway namespaces (198.18.0.0/15, 2001:db8::/32), which are always deleted.
#
# Two parts:
#  - IPv4, 10,000 excluded /32s: apply times (median of 5) and the cost per connection (3 interleaved rounds).
#  - IPv6, the scale: BENCH_CAPTURE_SIZES (default 1,000 10,000 50,000 100,000) excluded /64s, apply time and cost
#    per connection at each size. IPv6 because 198.18.0.0/15 holds at most 65,536 /32s that weir cannot merge into
#    fewer ranges, and the scale must be of set elements, not of merged ranges. The iptables side stops at
#    BENCH_IPT_MAX CIDRs (default: every size), or at the first size whose load takes longer than
#    BENCH_IPT_LOAD_LIMIT_MS (default 30,000), and the report says where.
#
# Raw samples: BENCH_OUT/capture.tsv (family, measure, variant, size, round, value). Run alone it also prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
WEIR="${WEIR:-$PWD/.build/dist/weir}"
[ -x "$WEIR" ] || WEIR="$PWD/.build/release/weir"
SIZES=${BENCH_CAPTURE_SIZES:-1000 10000 50000 100000}
IPT_MAX=${BENCH_IPT_MAX:-100000000}
IPT_LOAD_LIMIT_MS=${BENCH_IPT_LOAD_LIMIT_MS:-30000}
CONN_SECONDS=${BENCH_CAPTURE_SECONDS:-3}
CONN_ROUNDS=${BENCH_CAPTURE_ROUNDS:-3}
OUT=${BENCH_OUT:-.build/bench}
mkdir -p "$OUT"
TSV="$OUT/capture.tsv"
: > "$TSV"
NS="wtp-benchcap-$$"; PEER="wtp-benchpeer-$$"; TMP=$(mktemp -d)
cleanup() {
  for ns in "$NS" "$PEER"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  done
  # Reap them (the peer's nginx): their CPU time then counts as this script's children's, which bench.sh takes out
  # of the machine's when it judges whether other processes were busy.
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
ip netns add "$NS"; ip netns add "$PEER"
ip link add eth0 netns "$NS" type veth peer name eth0 netns "$PEER"
ip netns exec "$NS" ip addr add 198.18.0.1/24 dev eth0
ip netns exec "$PEER" ip addr add 198.18.0.2/24 dev eth0
ip netns exec "$NS" ip addr add 2001:db8::1/64 dev eth0 nodad
ip netns exec "$PEER" ip addr add 2001:db8::2/64 dev eth0 nodad
for ns in "$NS" "$PEER"; do ip netns exec "$ns" ip link set lo up; ip netns exec "$ns" ip link set eth0 up; done
# Tens of thousands of short connections per variant: keep ephemeral ports from running out (TIME_WAIT).
ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1

# The lists. IPv4: 10,000 /32s that do not merge (none is the peer). IPv6: /64s two apart, so none merge.
python3 - "$TMP" $SIZES <<'PY'
import sys
tmp, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
with open(tmp + "/v4-10000.txt", "w") as f:
    for a in range(40):
        for b in range(250):
            f.write("198.%d.%d.%d\n" % (18 + a % 2, 10 + a // 2 * 10 + b // 25, (b % 25) * 2))
for n in sizes:
    with open("%s/v6-%d.txt" % (tmp, n), "w") as f:
        for i in range(n):
            f.write("2001:db8:%x:%x::/64\n" % (0x8000 + i // 0x8000, (i % 0x8000) * 2))
PY
# istio-iptables' layout: one RETURN rule per excluded CIDR, then the capture rule. Without a NAT target the kernel
# never enables conntrack for the namespace and the nat chains are never walked at all.
iptables_rules() { # list capture-cidr > rules
  echo "*nat"; echo ":ISTIO_OUTPUT - [0:0]"; echo "-A OUTPUT -p tcp -j ISTIO_OUTPUT"
  sed 's|.*|-A ISTIO_OUTPUT -d & -j RETURN|' "$1"
  echo "-A ISTIO_OUTPUT -d $2 -p tcp -j REDIRECT --to-ports 15001"
  echo "COMMIT"
}
V4_CAPTURE=198.19.255.0/24
V6_CAPTURE=2001:db8:ffff::/48
iptables_rules "$TMP/v4-10000.txt" "$V4_CAPTURE" > "$TMP/v4-10000.iptables"
"$WEIR" rules -i "$V4_CAPTURE" -x "@$TMP/v4-10000.txt" --dry-run > "$TMP/v4-10000.nft"
for n in $SIZES; do
  iptables_rules "$TMP/v6-$n.txt" "$V6_CAPTURE" > "$TMP/v6-$n.iptables"
  "$WEIR" rules -i "$V6_CAPTURE" -x "@$TMP/v6-$n.txt" --dry-run > "$TMP/v6-$n.nft"
done

record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$TSV"; }   # family measure variant size round value
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
in_ns() { ip netns exec "$NS" "$@"; }
reset() {
  in_ns "$WEIR" clean >/dev/null
  in_ns iptables -t nat -F >/dev/null 2>&1 || true
  in_ns ip6tables -t nat -F >/dev/null 2>&1 || true
  in_ns nft flush ruleset
}
weir_rules() { # family capture list
  local x=(); [ -n "$3" ] && x=(-x "@$3")
  in_ns "$WEIR" rules -i "$2" "${x[@]}"
}
restore() { if [ "$1" = v4 ]; then in_ns iptables-restore -n "$2"; else in_ns ip6tables-restore -n "$2"; fi; }

echo "bench-capture: apply times" >&2
for i in 1 2 3 4 5; do
  reset; record v4 apply_ms weir 10000 "$i" "$(ms weir_rules v4 "$V4_CAPTURE" "$TMP/v4-10000.txt")"
  record v4 apply_ms weir-unchanged 10000 "$i" "$(ms weir_rules v4 "$V4_CAPTURE" "$TMP/v4-10000.txt")"
  reset; record v4 apply_ms nft 10000 "$i" "$(ms in_ns nft -f "$TMP/v4-10000.nft")"
  reset; record v4 apply_ms iptables 10000 "$i" "$(ms restore v4 "$TMP/v4-10000.iptables")"
done
ipt_sizes=()
ipt_stop=   # why the iptables side stopped: cap (BENCH_IPT_MAX) or slow (a load over BENCH_IPT_LOAD_LIMIT_MS)
for n in $SIZES; do
  ipt=
  if [ -n "$ipt_stop" ] || [ "$n" -gt "$IPT_MAX" ]; then
    [ -n "$ipt_stop" ] || ipt_stop=cap
    record v6 ipt_skipped "$ipt_stop" "$n" 0 "$IPT_LOAD_LIMIT_MS"
  else
    ipt=1; ipt_sizes+=("$n")
  fi
  for i in 1 2 3; do
    reset; record v6 apply_ms weir "$n" "$i" "$(ms weir_rules v6 "$V6_CAPTURE" "$TMP/v6-$n.txt")"
    reset; record v6 apply_ms nft "$n" "$i" "$(ms in_ns nft -f "$TMP/v6-$n.nft")"
    if [ -n "$ipt" ]; then
      reset; t=$(ms restore v6 "$TMP/v6-$n.iptables")
      record v6 apply_ms iptables "$n" "$i" "$t"
      if [ "$t" -gt "$IPT_LOAD_LIMIT_MS" ]; then ipt=; ipt_stop=slow; fi
    fi
  done
done

# New connections per second from the pod to the peer (each connection walks the nat output chain once).
cat > "$TMP/nginx.conf" <<NG
worker_processes 1; master_process off; daemon off; pid $TMP/nginx.pid; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; server { listen 198.18.0.2:80; listen [2001:db8::2]:80; location / { return 200 "ok\n"; } } }
NG
ip netns exec "$PEER" nginx -c "$TMP/nginx.conf" -p "$TMP" &
nginx_pid=$!   # daemon off, no master: one process, this one
for _ in $(seq 100); do ip netns exec "$PEER" ss -Hltn "sport = :80" | grep -q . && break; sleep 0.05; done
# Each run: wrk from the pod for CONN_SECONDS while perf samples every CPU at 4 kHz (cpu-clock). Records the
# connection rate and the CPU time per connection spent evaluating rules: kernel symbols nft_* (chains, sets,
# expressions; the iptables-nft variant runs the same code), in samples of the two processes of the test only. The
# pod's output hook runs in wrk's context when it connects, and the pod's input path runs in the peer's nginx when
# it sends (veth delivers in the sender's context), so those two pids hold all of it. Samples of other processes
# are left out: on a shared machine they may run nftables code of their own. The figure is CPU time per
# connection, so unlike the rate it hardly moves with how busy the machine is; it is not recorded without perf.
run() { # family variant size round
  local out n url=http://198.18.0.2/ pp= wrk_pid
  [ "$1" = v6 ] && url="http://[2001:db8::2]/"
  if command -v perf >/dev/null 2>&1; then
    perf record -q -a -e cpu-clock -F 4000 -o "$TMP/perf.data" -- sleep "$(python3 -c "print($CONN_SECONDS + 0.3)")" \
      >/dev/null 2>&1 &
    pp=$!
    sleep 0.1
  fi
  ip netns exec "$NS" wrk -t1 -c16 -d"${CONN_SECONDS}s" -H "Connection: close" "$url" > "$TMP/wrk.out" &
  wrk_pid=$!   # ip netns exec executes wrk in its own process: this is wrk's pid
  wait "$wrk_pid"
  out=$(cat "$TMP/wrk.out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  record "$1" rate "$2" "$3" "$4" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  if [ -n "$pp" ] && wait "$pp" && [ -s "$TMP/perf.data" ]; then
    record "$1" rule_us "$2" "$3" "$4" "$(perf report -i "$TMP/perf.data" --pid "$wrk_pid,$nginx_pid" --no-children \
      --sort sym -F sample,sym 2>/dev/null \
      | awk -v n="$n" '$3 ~ /^_*nft_/ {s += $1} END {printf "%.3f\n", s / 4000 * 1e6 / n}')"
  fi
}
# Interleaved rounds, medians: this machine's noise hits every variant alike.
for round in $(seq "$CONN_ROUNDS"); do
  echo "bench-capture: connections, round $round" >&2
  reset; run v4 none 0 "$round"
  weir_rules v4 "$V4_CAPTURE" "$TMP/v4-10000.txt" >/dev/null; run v4 weir 10000 "$round"
  reset; restore v4 "$TMP/v4-10000.iptables"; run v4 iptables 10000 "$round"
  reset; run v6 none 0 "$round"
  weir_rules v6 "$V6_CAPTURE" "" >/dev/null; run v6 weir 0 "$round"
  for n in $SIZES; do
    weir_rules v6 "$V6_CAPTURE" "$TMP/v6-$n.txt" >/dev/null; run v6 weir "$n" "$round"
  done
  for n in "${ipt_sizes[@]}"; do
    reset; restore v6 "$TMP/v6-$n.iptables"; run v6 iptables "$n" "$round"
  done
done
reset
[ -t 1 ] && [ -z "${BENCH_QUIET:-}" ] && column -t "$TSV"
exit 0
