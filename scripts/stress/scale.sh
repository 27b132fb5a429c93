# Scale of rules (sourced by scripts/stress.sh): 10,000, 50,000 and 100,000 excluded CIDRs (-x @file) and 1,000
# excluded ports (-o @file): apply time and weir's peak RSS, then the kernel CPU each new connection spends in
# nftables code (as scripts/bench-capture.sh measures it: perf samples of nft_* symbols during wrk), against the same
# exclusions as one ip6tables rule per entry (istio-iptables' layout), in the same run.
#
# The CIDRs are IPv6 /64s (2001:db8:8000::/64, 2001:db8:8000:2::/64, ...): 100,000 CIDRs that do not merge into
# fewer ranges do not fit in 198.18.0.0/15 (at most 65,536 non-adjacent /32s), and every address used here stays in
# the ranges set aside for testing. The connections are IPv6 too, so they walk the set that holds them.

scale_cidrs() { # N FILE
  awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "2001:db8:%x:%x::/64\n", 32768 + int(2 * i / 65536), (2 * i) % 65536 }' >"$2"
}

# ip6tables-restore input: one RETURN rule per line of FILE (CIDRs or ports), then the capture rule
ipt_rules() { # FILE cidr|port OUT
  {
    echo "*nat"; echo ":ISTIO_OUTPUT - [0:0]"; echo "-A OUTPUT -p tcp -j ISTIO_OUTPUT"
    if [ "$2" = cidr ]; then sed 's|^\(.*\)$|-A ISTIO_OUTPUT -d \1 -j RETURN|' "$1"
    else sed 's|^\(.*\)$|-A ISTIO_OUTPUT -p tcp --dport \1 -j RETURN|' "$1"; fi
    # the capture rule after the exclusions, as istio-iptables writes it: with a NAT target conntrack is on and the
    # chain is walked by every new connection
    echo "-A ISTIO_OUTPUT -d 2001:db8:ffff::/48 -p tcp -j REDIRECT --to-ports 15001"
    echo "COMMIT"
  } >"$3"
}

scale_reset() {
  ip netns exec "$POD" "$WEIR" clean >/dev/null
  ip netns exec "$POD" ip6tables -t nat -F 2>/dev/null || true
  ip netns exec "$POD" ip6tables -t nat -X 2>/dev/null || true
  ip netns exec "$POD" nft flush ruleset
}

# timed CMD...: runs CMD in the pod; prints "wall_ms maxrss_kb status"
timed() {
  local out
  out=$(ip netns exec "$POD" "$LOAD" rusage "$@" 2>&1 >/dev/null | grep '^wall_ms=' | tail -n 1)
  echo "$(kv "$out" wall_ms) $(kv "$out" maxrss_kb) $(kv "$out" status)"
}

# rule_cost: one wrk run of 3 s from the pod while perf samples every CPU; prints "rate<TAB>us_per_connection_in_nft",
# or "rate<TAB>none: WHY" when the run measured nothing (wrk failed or made no connection, perf failed, or no nft_*
# sample of the test's processes): a run that measured nothing must not read as 0 us, which would pass any "below".
rule_cost() {
  local out n pp wrk_pid ws=0 ps=0 rate samples pids
  rm -f "$WORK/perf.data"
  perf record -q -a -e cpu-clock -F 4000 -o "$WORK/perf.data" -- sleep 3.3 >/dev/null 2>&1 &
  pp=$!
  sleep 0.1
  ip netns exec "$POD" wrk -t1 -c16 -d3s -H "Connection: close" "http://[2001:db8:1::2]/" >"$WORK/wrk.out" 2>&1 &
  wrk_pid=$!   # ip netns exec executes wrk in its own process: this is wrk's pid
  wait "$wrk_pid" || ws=$?
  out=$(cat "$WORK/wrk.out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  wait "$pp" || ps=$?
  rate=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
  printf '%s\t' "${rate:-0}"
  if [ "$ws" != 0 ] || [ "${n:-0}" -le 0 ]; then echo "none: wrk exited $ws after ${n:-0} requests"; return; fi
  if [ "$ps" != 0 ] || [ ! -s "$WORK/perf.data" ]; then echo "none: perf record exited $ps"; return; fi
  # Only samples of the test's own processes, by pid (as scripts/bench-capture.sh): the rules are evaluated in the
  # context of the process that sends (wrk's SYN in the pod's output hook, nginx's replies arriving in the pod:
  # veth delivers in the sender's context), and other work on this shared machine (another namespace's nftables, a
  # neighbour's wrk or nginx) stays out of the figure. perf report --pid takes process ids (all of wrk's threads).
  pids=$wrk_pid,$NGINX_PID
  samples=$(perf report -i "$WORK/perf.data" --pid "$pids" --no-children --sort sym -F sample,sym 2>/dev/null \
    | awk '$3 ~ /^_*nft_/ {s += $1} END {print s + 0}')
  if [ "$samples" -le 0 ]; then echo "none: no nft_* sample of pids $pids"; return; fi
  awk -v s="$samples" -v n="$n" 'BEGIN {printf "%.2f\n", s / 4000 * 1e6 / n}'
}

median3() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print NR ? a[int((NR + 1) / 2)] : "n/a"}'; }

# cost VARIANT: three runs; sets COST[VARIANT] (median us) and RATE[VARIANT]. If any run measured nothing, COST is
# left unset and NOCOST[VARIANT] says why: every check that needs that figure fails.
cost() {
  local r c rates="" costs="" bad="" nbad=0 _
  for _ in 1 2 3; do
    IFS=$'\t' read -r r c <<<"$(rule_cost)"
    rates+=" $r"
    if [[ $c == none:* ]]; then
      nbad=$((nbad + 1)); c=${c#none: }
      [[ "; $bad; " == *"; $c; "* ]] || bad+="${bad:+; }$c"
      costs+=" none"
    else costs+=" $c"; fi
  done
  RATE[$1]=$(median3 <<<"$rates")
  if [ "$nbad" -gt 0 ]; then NOCOST[$1]="measured nothing in $nbad of 3 runs ($bad)"
  else COST[$1]=$(median3 <<<"$costs"); fi
  say "scale: $1: rates$rates, us in nft per connection$costs"
}

# cost_of VARIANT: its median in us, or what went wrong
cost_of() { if [ -n "${COST[$1]:-}" ]; then echo "${COST[$1]} us"; else echo "${NOCOST[$1]:-not run}"; fi; }

scale() {
  local sec="scale" dir=$LOGS/scale
  mkdir -p "$dir"
  command -v perf >/dev/null || { pass_line "$sec" "perf available" "no" "linux-perf installed" 0; return; }
  topo_up scal
  # One process (no master), so the pid below is the one that serves, for perf's --pid.
  cat >"$WORK/nginx.conf" <<NG
worker_processes 1; master_process off; daemon off; pid $WORK/nginx.pid; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; server { listen [2001:db8:1::2]:80; location / { return 200 "ok\n"; } } }
NG
  bg "$PEER" "$dir/nginx.log" nginx -c "$WORK/nginx.conf" -p "$WORK"
  local nginx=$BG_PID
  NGINX_PID=$nginx   # ip netns exec executes nginx in its own process: this is nginx's pid
  sleep 1
  local n sizes=() base="-i 2001:db8:ffff::/48"
  for n in $SCALE_SIZES; do sizes+=("$n"); scale_cidrs "$n" "$WORK/cidrs$n.txt"; done
  seq 20000 20999 >"$WORK/ports.txt"
  declare -A RATE COST NOCOST APPLY REAPPLY RSS RERSS IPT IPTRSS
  local s ms kb

  # Apply: weir rules (netlink, one batch), three fresh applies, then one unchanged re-apply (read back, compare).
  for n in "${sizes[@]}" ports; do
    local list="-x @$WORK/cidrs$n.txt"
    [ "$n" = ports ] && list="-o @$WORK/ports.txt"
    local times="" rss=0
    for _ in 1 2 3; do
      scale_reset
      # shellcheck disable=SC2086
      read -r ms kb s <<<"$(timed "$WEIR" rules $base $list)"
      times+=" $ms"; [ "$kb" -gt "$rss" ] && rss=$kb
      [ "$s" = 0 ] || say "scale: weir rules $n exited $s"
    done
    APPLY[$n]=$(median3 <<<"$times"); RSS[$n]=$rss
    # shellcheck disable=SC2086
    read -r ms kb s <<<"$(timed "$WEIR" rules $base $list)"
    REAPPLY[$n]="$ms"; RERSS[$n]=$kb
    local held
    if [ "$n" = ports ]; then held=$(ip netns exec "$POD" nft -j list set inet weir outbound-ports-exclude | grep -o '[0-9]\+' | wc -l)
    else held=$(ip netns exec "$POD" nft list set inet weir outbound-exclude-v6 | grep -o '/64' | wc -l); fi
    figure "$sec" "weir rules, $( [ "$n" = ports ] && echo "1,000 excluded ports (-o)" || echo "$n excluded CIDRs (-x)")" \
      "apply ${APPLY[$n]} ms (median of 3, times:$times), peak RSS $(mib "${RSS[$n]}"); unchanged re-apply ${REAPPLY[$n]} ms, $(mib "${RERSS[$n]}")"
    [ "$n" = ports ] || pass_line "$sec" "$n excluded CIDRs applied, the set holds them all" "$held elements" "$n" $(( held == n ))
  done
  scale_reset

  # Per-connection rule cost: weir without exclusions, with each set; ip6tables with one rule per entry.
  # shellcheck disable=SC2086
  ip netns exec "$POD" "$WEIR" rules $base >/dev/null; cost weir0
  for n in "${sizes[@]}"; do
    # shellcheck disable=SC2086
    ip netns exec "$POD" "$WEIR" rules $base -x "@$WORK/cidrs$n.txt" >/dev/null; cost "weir$n"
  done
  # shellcheck disable=SC2086
  ip netns exec "$POD" "$WEIR" rules $base -o "@$WORK/ports.txt" >/dev/null; cost weirports
  local capped=""
  for n in "${sizes[@]}" ports; do
    scale_reset
    if [ "$n" != ports ] && [ "$n" -gt "$IPT_MAX" ]; then capped+=" $n"; continue; fi
    if [ "$n" = ports ]; then ipt_rules "$WORK/ports.txt" port "$WORK/ipt.rules"
    else ipt_rules "$WORK/cidrs$n.txt" cidr "$WORK/ipt.rules"; fi
    read -r ms kb s <<<"$(timed timeout 300 ip6tables-restore -n "$WORK/ipt.rules")"
    # Over 300 s (timeout's 124) is a cap like STRESS_IPTABLES_MAX; any other failure leaves the figure unmeasured,
    # and the comparison below fails.
    if [ "$s" = 124 ]; then capped+=" $n"; say "scale: ip6tables-restore of $n: over 300 s"; continue; fi
    if [ "$s" != 0 ]; then NOCOST[ipt$n]="ip6tables-restore exited ${s:-?}"; say "scale: ip6tables-restore of $n: status $s"; continue; fi
    IPT[$n]=$ms; IPTRSS[$n]=$kb
    cost "ipt$n"
  done
  scale_reset
  for n in "${sizes[@]}" ports; do
    figure "$sec" "rule cost per new connection, $( [ "$n" = ports ] && echo "1,000 excluded ports" || echo "$n CIDRs")" \
      "weir $(cost_of "weir$n") ($(printf '%s' "${RATE[weir$n]}")/s); ip6tables, one rule each: $(cost_of "ipt$n") (${RATE[ipt$n]:-}/s, restore ${IPT[$n]:-} ms, $(mib "${IPTRSS[$n]:-0}"))"
  done
  figure "$sec" "rule cost per new connection, weir without -x" "$(cost_of weir0) (${RATE[weir0]}/s)"
  [ -n "$capped" ] && figure "$sec" "iptables side capped (STRESS_IPTABLES_MAX=$IPT_MAX or 300 s)" "not run for:$capped"

  # Flat: the largest set costs a connection at most 1.5x what the smallest does (an interval-set lookup is
  # O(log n): 10x the CIDRs add a few tree levels), and less than one ip6tables rule per CIDR at every size.
  # Every figure a check uses must be a measurement (COST set): one that measured nothing fails the check.
  local small=${sizes[0]} large=${sizes[-1]} flat=0
  [ -n "${COST[weir$small]:-}" ] && [ -n "${COST[weir$large]:-}" ] \
    && awk -v a="${COST[weir$small]}" -v b="${COST[weir$large]}" 'BEGIN {exit !(b <= 1.5 * a + 0.2)}' && flat=1
  pass_line "$sec" "weir's rule cost per connection stays flat as the set grows" \
    "$(cost_of "weir$small") at $small, $(cost_of "weir$large") at $large CIDRs (without -x: $(cost_of weir0))" \
    "both measured; at $large <= 1.5 x at $small + 0.2 us" "$flat"
  # Sizes the iptables side skipped on purpose (above STRESS_IPTABLES_MAX, or a restore that took over 300 s:
  # listed in the figure above) are left out; any other size, and the 1,000 ports, must compare two
  # measurements, and at least one size must.
  local row="" okall=1 compared=0
  for n in "${sizes[@]}" ports; do
    [[ " $capped " == *" $n "* ]] && continue
    row+="${row:+; }$n: $(cost_of "weir$n") vs $(cost_of "ipt$n")"
    if [ -n "${COST[weir$n]:-}" ] && [ -n "${COST[ipt$n]:-}" ]; then
      compared=$((compared + 1))
      awk -v a="${COST[weir$n]}" -v b="${COST[ipt$n]}" 'BEGIN {exit !(a < b)}' || okall=0
    else okall=0; fi
  done
  [ "$compared" -gt 0 ] || okall=0
  pass_line "$sec" "weir below one ip6tables rule per entry, at every size" "${row:-nothing compared}" \
    "each measured (> 0 connections, > 0 nft samples), weir < ip6tables" "$okall"

  # The agent holding the largest set: time to ready, RSS, and CPU while idle (reconcile runs every 10 s).
  scale_reset
  local t0 ready_ms
  t0=$(now_ms)
  # shellcheck disable=SC2086
  agent_start "$dir/agent.log" $base -x "@$WORK/cidrs$large.txt" || {
    pass_line "$sec" "weir run with $large CIDRs starts" "no" "ready" 0; stop_pid "$nginx"; topo_down; return; }
  ready_ms=$(( $(now_ms) - t0 ))
  # A measurement that fails (the agent exited) fails the check: a process that is gone spends no CPU.
  local rss_a="" cpu_a="" hwm_a="" gone=""
  rss_a=$(rss_kb "$AGENT") && cpu_a=$(idle_cpu_percent "$AGENT" 25) && hwm_a=$(hwm_kb "$AGENT") \
    || gone=$(gone_note "$AGENT")
  local runs
  runs=$(metric weir_reconcile_runs_total)
  agent_stop
  figure "$sec" "weir run -x @$large CIDRs" \
    "ready in $ready_ms ms, $( [ -n "$gone" ] && echo "$gone" || echo "RSS $(mib "$rss_a") (peak $(mib "$hwm_a")), ${runs:-?} reconcile passes in 25 s")"
  pass_line "$sec" "weir run holding $large CIDRs: CPU when idle" \
    "$( [ -n "$gone" ] && echo "$gone" || echo "${cpu_a}% of one CPU over 25 s")" "agent up; <= 1%" \
    "$(awk -v c="$cpu_a" 'BEGIN {print (c != "" && c <= 1.0) ? 1 : 0}')"
  pass_line "$sec" "weir run holding $large CIDRs: up through the measure, exit 0 on SIGTERM" \
    "$( [ -n "$gone" ] && echo "exited early; " )status=$AGENT_STATUS" "up, 0" \
    $(( ${#gone} == 0 && AGENT_STATUS == 0 ))
  scale_reset
  stop_pid "$nginx"
  topo_down
}
