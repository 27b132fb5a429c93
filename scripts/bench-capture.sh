#!/usr/bin/env bash
# Capture benchmark: how long 10,000 excluded CIDRs take to apply, and what they cost each new connection, for weir
# (one interval set, over netlink), `nft -f` of weir's own dry-run text, and iptables-restore with one rule per CIDR
# (istio-iptables' layout). Runs in throwaway namespaces (198.18.0.0/15); prints a table of times and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
WEIR="${WEIR:-$PWD/.build/release/weir}"
[ -x "$WEIR" ] || WEIR="$PWD/.build/debug/weir"
NS="weir-benchcap-$$"; PEER="weir-benchpeer-$$"; TMP=$(mktemp -d)
cleanup() {
  for ns in "$NS" "$PEER"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"; ip netns add "$PEER"
ip link add eth0 netns "$NS" type veth peer name eth0 netns "$PEER"
ip netns exec "$NS" ip addr add 198.18.0.1/24 dev eth0
ip netns exec "$PEER" ip addr add 198.18.0.2/24 dev eth0
for ns in "$NS" "$PEER"; do ip netns exec "$ns" ip link set lo up; ip netns exec "$ns" ip link set eth0 up; done

# 10,000 excluded /32s that do not merge (none is the peer).
python3 - "$TMP/cidrs.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for a in range(40):
        for b in range(250):
            f.write("198.%d.%d.%d\n" % (18 + a % 2, 10 + a // 2 * 10 + b // 25, (b % 25) * 2))
PY
"$WEIR" rules -i 198.19.255.0/24 -x "@$TMP/cidrs.txt" --dry-run > "$TMP/weir.nft"
{
  echo "*nat"; echo ":ISTIO_OUTPUT - [0:0]"; echo "-A OUTPUT -p tcp -j ISTIO_OUTPUT"
  while read -r c; do echo "-A ISTIO_OUTPUT -d $c/32 -j RETURN"; done < "$TMP/cidrs.txt"
  # The capture rule after the exclusions, as istio-iptables writes it (-i 198.19.255.0/24). Without a NAT target
  # the kernel never enables conntrack for the namespace and the nat chains are never walked at all.
  echo "-A ISTIO_OUTPUT -d 198.19.255.0/24 -p tcp -j REDIRECT --to-ports 15001"
  echo "COMMIT"
} > "$TMP/iptables.rules"

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
in_ns() { ip netns exec "$NS" "$@"; }
reset() { in_ns "$WEIR" clean >/dev/null; in_ns iptables -t nat -F >/dev/null 2>&1 || true; in_ns nft flush ruleset; }

# Median of the numbers on stdin; "n/a" entries (no perf) are skipped, and only "n/a" gives "n/a".
median() { grep -v n/a | sort -g | awk '{a[NR]=$1} END {print NR ? a[int((NR+1)/2)] : "n/a"}'; }
apply_weir=$(for i in 1 2 3 4 5; do reset; ms in_ns "$WEIR" rules -i 198.19.255.0/24 -x "@$TMP/cidrs.txt"; done | median)
reapply_weir=$(for i in 1 2 3 4 5; do ms in_ns "$WEIR" rules -i 198.19.255.0/24 -x "@$TMP/cidrs.txt"; done | median)
apply_nft=$(for i in 1 2 3 4 5; do reset; ms in_ns nft -f "$TMP/weir.nft"; done | median)
apply_ipt=$(for i in 1 2 3 4 5; do reset; ms in_ns iptables-restore -n "$TMP/iptables.rules"; done | median)

# New connections per second from the pod to the peer (each connection walks the nat output chain once).
cat > "$TMP/nginx.conf" <<NG
worker_processes 1; daemon off; pid $TMP/nginx.pid; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; server { listen 198.18.0.2:80; location / { return 200 "ok\n"; } } }
NG
ip netns exec "$PEER" nginx -c "$TMP/nginx.conf" -p "$TMP" & disown
sleep 1
# Each run: wrk from the pod for 3 s while perf samples every CPU at 4 kHz (cpu-clock). Prints the connection rate
# and the CPU time per connection spent evaluating rules (kernel symbols nft_*: chains, sets, expressions; the
# iptables-nft variant runs the same code). The second figure is CPU time per connection, so unlike the rate it does
# not move with how busy this shared machine is; it is "n/a" when perf is missing.
run() {
  local out n
  if command -v perf >/dev/null 2>&1; then
    perf record -q -a -e cpu-clock -F 4000 -o "$TMP/perf.data" -- sleep 3.3 >/dev/null 2>&1 &
    local pp=$!
    sleep 0.1
  fi
  out=$(in_ns wrk -t1 -c16 -d3s -H "Connection: close" http://198.18.0.2/)
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%s ' "$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")"
  if [ -n "${pp:-}" ] && wait "$pp" && [ -s "$TMP/perf.data" ]; then
    perf report -i "$TMP/perf.data" --no-children --sort sym -F sample,sym 2>/dev/null \
      | awk -v n="$n" '$3 ~ /^_*nft_/ {s += $1} END {printf "%.2f\n", s / 4000 * 1e6 / n}'
  else
    echo n/a
  fi
}
# Interleaved rounds, medians: this machine's noise hits every variant alike.
head -n 100 "$TMP/cidrs.txt" > "$TMP/cidrs100.txt"
declare -A RATE EVAL
measure() { local r; r=$(run); RATE[$1]+=" ${r% *}"; EVAL[$1]+=" ${r#* }"; }
for round in 1 2 3; do
  reset; measure none
  in_ns "$WEIR" rules -i 198.19.255.0/24 >/dev/null; measure weir0
  in_ns "$WEIR" rules -i 198.19.255.0/24 -x "@$TMP/cidrs100.txt" >/dev/null; measure weir100
  in_ns "$WEIR" rules -i 198.19.255.0/24 -x "@$TMP/cidrs.txt" >/dev/null; measure weir
  reset; in_ns iptables-restore -n "$TMP/iptables.rules"; measure ipt
done
reset
med() { printf '%s\n' $1 | median; }
for k in none weir0 weir100 weir ipt; do echo "bench-capture: raw $k rate:${RATE[$k]} eval_us:${EVAL[$k]}" >&2; done
rate_none=$(med "${RATE[none]}"); rate_weir0=$(med "${RATE[weir0]}"); rate_weir100=$(med "${RATE[weir100]}")
rate_weir=$(med "${RATE[weir]}"); rate_ipt=$(med "${RATE[ipt]}")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
printf '\n%-58s %12s %10s\n' "capture, 10,000 excluded CIDRs (apply: median of 5)" "value" "ratio"
printf '%-58s %10s ms %10s\n' "weir rules (netlink, one batch, interval set)" "$apply_weir" "1.00"
printf '%-58s %10s ms %10s\n' "weir rules again, unchanged (read back, nothing sent)" "$reapply_weir" "$(ratio "$reapply_weir" "$apply_weir")"
printf '%-58s %10s ms %10s\n' "nft -f of weir's dry-run text" "$apply_nft" "$(ratio "$apply_nft" "$apply_weir")"
printf '%-58s %10s ms %10s\n' "iptables-restore, one rule per CIDR (istio layout)" "$apply_ipt" "$(ratio "$apply_ipt" "$apply_weir")"
printf '%-58s %10s /s %10s %14s\n' "new connections/s, no rules (median of 3)" "$rate_none" "1.00" "$(med "${EVAL[none]}") us rules"
printf '%-58s %10s /s %10s %14s\n' "new connections/s, weir without -x" "$rate_weir0" "$(ratio "$rate_weir0" "$rate_none")" "$(med "${EVAL[weir0]}") us rules"
printf '%-58s %10s /s %10s %14s\n' "new connections/s, weir with 100 CIDRs" "$rate_weir100" "$(ratio "$rate_weir100" "$rate_none")" "$(med "${EVAL[weir100]}") us rules"
printf '%-58s %10s /s %10s %14s\n' "new connections/s, weir with 10,000 CIDRs" "$rate_weir" "$(ratio "$rate_weir" "$rate_none")" "$(med "${EVAL[weir]}") us rules"
printf '%-58s %10s /s %10s %14s\n' "new connections/s, iptables with 10,000 rules" "$rate_ipt" "$(ratio "$rate_ipt" "$rate_none")" "$(med "${EVAL[ipt]}") us rules"
