# Faults injected while traffic flows (sourced by scripts/stress.sh). For each: what the client sees, and a check
# that it is what an operator expects. Background traffic (100 connections each way, every kind) runs through each
# fault and is checked too. The agent runs in TPROXY mode with outbound capture (-i '*') and inbound (-b '*').

# Background load for the length of one fault: bg_start TAG, then bg_stop TAG prints "failed corrupt started".
bg_start() {
  bg "$POD" "$FDIR/$1-bg-out.log" "$LOAD" client --conns "$BG_CONNS" --mix bulk=5,rr=60,idle=20,rstc=8,rsts=7 \
    --bulk-max 4M --idle-ms 2000 --grace 30 198.18.1.2:7000 '[2001:db8:1::2]:7000'
  BG_OUT=$BG_PID
  bg "$PEER" "$FDIR/$1-bg-in.log" "$LOAD" client --conns "$BG_CONNS" --mix bulk=5,rr=60,idle=20,rstc=8,rsts=7 \
    --bulk-max 4M --idle-ms 2000 --grace 30 198.18.1.1:7000 '[2001:db8:1::1]:7000'
  BG_IN=$BG_PID
}

bg_stop() { # TAG: sets BGF (failed), BGC (corrupt bytes), BGN (connections)
  kill -TERM "$BG_OUT" "$BG_IN" 2>/dev/null || true
  wait "$BG_OUT" "$BG_IN" 2>/dev/null || true
  local a b
  a=$(summary_of "$FDIR/$1-bg-out.log" client); b=$(summary_of "$FDIR/$1-bg-in.log" client)
  BGF=$(( ${a:+$(kv "$a" failed)}+0 + ${b:+$(kv "$b" failed)}+0 ))
  BGC=$(( ${a:+$(kv "$a" corrupt_bytes)}+0 + ${b:+$(kv "$b" corrupt_bytes)}+0 ))
  BGN=$(( ${a:+$(kv "$a" started)}+0 + ${b:+$(kv "$b" started)}+0 ))
  [ -n "$a" ] && [ -n "$b" ] || BGF=$((BGF + 1))  # a client without its summary line failed
}

# outcomes EVENTS_LOG: "outcome=count ..." of the per-connection event lines
outcomes() { grep '^ev ' "$1" | sed 's/.* outcome=\([a-z_]*\).*/\1/' | sort | uniq -c | awk '{printf "%s%s=%s", (NR > 1 ? " " : ""), $2, $1}'; }

# max over event lines of FIELD (numeric)
ev_max() { grep '^ev ' "$1" | sed "s/.* $2=\([0-9-]*\).*/\1/" | sort -n | tail -n 1; }

fault_dies() {
  local sec="fault: upstream dies mid-stream"
  bg_start dies
  bg "$PEER" "$FDIR/dies-server.log" "$LOAD" server 7100 198.18.1.2
  local srv=$BG_PID
  wait_for_line "$FDIR/dies-server.log" READY 10
  # 20 connections pushing and pulling 1 GB each; the server process is killed 2 s in.
  bg "$POD" "$FDIR/dies-client.log" "$LOAD" client --once --events --conns 20 --mix bulk=1 --up 1G --down 1G \
    --deadline-s 60 198.18.1.2:7100
  local cl=$BG_PID
  sleep 2
  local t_kill
  t_kill=$(now_ms)
  kill -KILL "$srv"; wait "$srv" 2>/dev/null || true
  local i
  for ((i = 0; i < 600; i++)); do kill -0 "$cl" 2>/dev/null || break; sleep 0.05; done
  stop_pid "$cl" KILL 1
  local last took seen corrupt
  last=$(ev_max "$FDIR/dies-client.log" end_ms)
  took=$(( ${last:-0} - t_kill ))
  seen=$(outcomes "$FDIR/dies-client.log")
  corrupt=$(kv "$(summary_of "$FDIR/dies-client.log" client)" corrupt_bytes)
  local n_ended
  n_ended=$(grep -cE '^ev .*outcome=(reset|eof_short)' "$FDIR/dies-client.log" || true)
  bg_stop dies; local bf=$BGF bc=$BGC bn=$BGN
  figure "$sec" "what the 20 clients saw" "$seen, the last $took ms after the kill, ${corrupt:-?} corrupt bytes before it"
  pass_line "$sec" "clients see the stream end at once (reset), intact up to there" \
    "$seen; last one $took ms after kill -9; corrupt ${corrupt:-?}" \
    "20 of 20 reset or cut short within 2 s, 0 corrupt" $(( n_ended == 20 && took <= 2000 && ${corrupt:-1} == 0 ))
  pass_line "$sec" "background traffic meanwhile" "$bf failed, $bc corrupt bytes of $bn connections" \
    "0 failed, 0 corrupt, > 0 connections" $(( bf == 0 && bc == 0 && bn > 0 ))
}

fault_blackhole() {
  local sec="fault: upstream never reads, client pushes 1 GB"
  bg_start blackhole
  bg "$PEER" "$FDIR/blackhole-server.log" "$LOAD" blackhole 7200 198.18.1.2
  local srv=$BG_PID
  wait_for_line "$FDIR/blackhole-server.log" READY 10
  # The agent's RSS before and all along; a sample that fails (the agent exited) fails the memory check: a process
  # that is gone holds no memory, and must not pass for bounded.
  local rss0 gone=""
  rss0=$(rss_kb "$AGENT") || gone=$(gone_note "$AGENT")
  bg "$POD" "$FDIR/blackhole-client.log" "$LOAD" client --once --events --conns 1 --mix bulk=1 --up 1G --down 0 \
    --deadline-s $((IDLE + 60)) 198.18.1.2:7200
  local cl=$BG_PID peak=${rss0:-0} r i
  for ((i = 0; i < (IDLE + 60) * 10; i++)); do
    kill -0 "$cl" 2>/dev/null || break
    [ -z "$gone" ] || break
    if r=$(rss_kb "$AGENT"); then [ "$r" -gt "$peak" ] && peak=$r; else gone=$(gone_note "$AGENT"); fi
    sleep 0.1
  done
  # and once more after the client ended (the connection it pushed on was cut: the agent must still be there)
  [ -n "$gone" ] || rss_kb "$AGENT" >/dev/null || gone=$(gone_note "$AGENT")
  stop_pid "$cl" KILL 1
  stop_pid "$srv" KILL 1
  local ev pushed dur
  ev=$(grep '^ev ' "$FDIR/blackhole-client.log" | tail -n 1)
  pushed=$(kv "$ev" up_sent); dur=$(kv "$ev" dur_ms)
  bg_stop blackhole; local bf=$BGF bc=$BGC bn=$BGN
  local grew=$((peak - ${rss0:-0})) outcome
  outcome=$(kv "$ev" outcome)
  figure "$sec" "what the client saw" \
    "its writes stalled after $(awk -v b="${pushed:-0}" 'BEGIN {printf "%.1f MiB", b / 1048576}') of 1 GiB; then ${outcome:-no outcome} ($(kv "$ev" errno)) after ${dur:-?} ms (idle timeout ${IDLE} s)"
  figure "$sec" "agent RSS while the client pushed" \
    "$(mib "${rss0:-0}") before, $(mib "$peak") peak (+${grew} KiB)${gone:+; $gone}"
  pass_line "$sec" "memory bounded while the upstream does not read (agent up all along)" \
    "$( [ -n "$gone" ] && echo "$gone" || echo "+${grew} KiB peak RSS")" "agent up, < 4096 KiB" \
    $(( ${#gone} == 0 && grew < 4096 ))
  local cut=0
  [ -z "$gone" ] && [ "$outcome" = reset ] && [ "${dur:-999999}" -ge $(( (IDLE - 1) * 1000 )) ] \
    && [ "${dur:-999999}" -le $(( (IDLE + 3) * 1000 )) ] && [ "${pushed:-1073741824}" -lt 1073741824 ] && cut=1
  pass_line "$sec" "the stalled connection is cut by the idle timeout (agent up)" \
    "${outcome:-no outcome} after ${dur:-?} ms, $(awk -v b="${pushed:-0}" 'BEGIN {printf "%.1f MiB", b / 1048576}') accepted${gone:+; $gone}" \
    "reset, between idle timeout - 1 s and + 3 s, < 1 GiB accepted, agent up" "$cut"
  pass_line "$sec" "background traffic meanwhile" "$bf failed, $bc corrupt bytes of $bn connections" \
    "0 failed, 0 corrupt, > 0 connections" $(( bf == 0 && bc == 0 && bn > 0 ))
}

fault_vanish() {
  local sec="fault: client vanishes without FIN"
  local van=wst-$$-vanish
  ns_add "$van"
  veth "$POD" wsv0 "198.18.2.1/24 2001:db8:2::1/64" "$van" wsv1 "198.18.2.2/24 2001:db8:2::2/64"
  bg_start vanish
  bg "$POD" "$FDIR/vanish-server.log" "$LOAD" server 7300 198.18.2.1 2001:db8:2::1
  local srv=$BG_PID
  wait_for_line "$FDIR/vanish-server.log" READY 10
  # 20 idle connections (one round, then a long pause) and 20 downloads of 1 GB, inbound through the agent.
  bg "$van" "$FDIR/vanish-idle.log" "$LOAD" client --once --conns 20 --mix idle=1 --rounds-max 10 --idle-ms 600000 \
    198.18.2.1:7300 '[2001:db8:2::1]:7300'
  local c1=$BG_PID
  bg "$van" "$FDIR/vanish-bulk.log" "$LOAD" client --once --conns 20 --mix bulk=1 --up 0 --down 1G \
    198.18.2.1:7300 '[2001:db8:2::1]:7300'
  local c2=$BG_PID
  sleep 2
  local held
  # each proxied connection: the proxy's upstream socket (to :7300); the proxy's client socket and the
  # application's socket have :7300 as their local port
  held=$(ip netns exec "$POD" ss -Htnp '( dport = :7300 )' | grep -c "pid=$AGENT," || true)
  # The client's host disappears: its link goes down, then its processes die (their FIN and RST go nowhere).
  local t0
  t0=$(now_ms)
  ip -n "$van" link set wsv1 down
  kill -KILL "$c1" "$c2" 2>/dev/null; wait "$c1" "$c2" 2>/dev/null || true
  local n gone=-1 i
  for ((i = 0; i < (IDLE * 3 + 10) * 10; i++)); do
    # sockets the agent or the application still hold (a socket the agent closed may linger in the kernel,
    # retransmitting to nobody, but it is no longer anyone's)
    n=$(ip netns exec "$POD" ss -Htnp '( sport = :7300 or dport = :7300 )' | grep -c -e "pid=$AGENT," -e "pid=$srv," || true)
    if [ "$n" -eq 0 ]; then gone=$(( $(now_ms) - t0 )); break; fi
    sleep 0.1
  done
  stop_pid "$srv"
  local s
  s=$(summary_of "$FDIR/vanish-server.log" server)
  bg_stop vanish; local bf=$BGF bc=$BGC bn=$BGN
  ns_del "$van"
  figure "$sec" "what the application saw" \
    "$held connections held; after the client vanished the agent closed them: $(kv "$s" unexpected) ended short (FIN or RST from the agent), $(kv "$s" ok) whole"
  pass_line "$sec" "the agent reaps both sockets of each vanished client" \
    "$held connections, all closed $( [ "$gone" -ge 0 ] && echo "${gone} ms" || echo never) after the client vanished" \
    "40 held, all closed within idle timeout + 2 s" $(( gone >= 0 && gone <= (IDLE + 2) * 1000 && held == 40 ))
  pass_line "$sec" "background traffic meanwhile" "$bf failed, $bc corrupt bytes of $bn connections" \
    "0 failed, 0 corrupt, > 0 connections" $(( bf == 0 && bc == 0 && bn > 0 ))
}

# wait_back CMD TEXT: ms until the output of CMD (in the pod) contains TEXT again, polling every 10 ms (-1: never)
wait_back() {
  local t0 i
  t0=$(now_ms)
  for ((i = 0; i < 1500; i++)); do
    ip netns exec "$POD" $1 2>/dev/null | grep -q -- "$2" && { echo $(( $(now_ms) - t0 )); return; }
    sleep 0.01
  done
  echo -1
}

fault_drift() {
  local sec="fault: capture deleted behind weir's back"
  bg_start drift
  sleep 1
  # The table is owned by the agent (nftables owner flag): the kernel refuses everyone else.
  local del flush before
  before=$(ip netns exec "$POD" nft -a list table inet weir | sed 's/counter packets [0-9]* bytes [0-9]*/counter/' | md5sum)
  del=$(ip netns exec "$POD" nft delete table inet weir 2>&1 | sed -n 1p || true)
  flush=$(ip netns exec "$POD" nft flush chain inet weir mangle-prerouting 2>&1 | sed -n 1p || true)
  local after
  after=$(ip netns exec "$POD" nft -a list table inet weir | sed 's/counter packets [0-9]* bytes [0-9]*/counter/' | md5sum)
  figure "$sec" "nft delete table inet weir; nft flush chain" "$del / $flush"
  local refused=0
  [ "$(grep -c 'Operation not permitted' <<<"$del
$flush")" = 2 ] && [ "$before" = "$after" ] && refused=1
  pass_line "$sec" "the owned table cannot be deleted or flushed" \
    "$( [ $refused = 1 ] && echo "both refused (EPERM), table unchanged" || echo "$del / $flush")" \
    "EPERM, unchanged" "$refused"
  # ip rules, routes and the ::6 address are not owned: delete each, time the repair.
  local r0 ok=1 what t times=""
  r0=$(metric 'weir_reconcile_repairs_total{object="rule"}')
  for what in "-4 rule" "-6 rule" "-4 route" "-6 route" "-6 addr"; do
    case $what in
      "-4 rule") ip -n "$POD" -4 rule del fwmark 1337 lookup 133; t=$(wait_back "ip -4 rule" "lookup 133") ;;
      "-6 rule") ip -n "$POD" -6 rule del fwmark 1337 lookup 133; t=$(wait_back "ip -6 rule" "lookup 133") ;;
      "-4 route") ip -n "$POD" -4 route del local default dev lo table 133
                  t=$(wait_back "ip -4 route show table 133" "local default") ;;
      "-6 route") ip -n "$POD" -6 route del local default dev lo table 133
                  t=$(wait_back "ip -6 route show table 133" "local default") ;;
      "-6 addr") ip -n "$POD" -6 addr del ::6/128 dev lo; t=$(wait_back "ip -6 addr show dev lo" "::6/128") ;;
    esac
    times+="${times:+, }ip $what ${t} ms"
    [ "$t" -ge 0 ] && [ "$t" -le $((RECONCILE * 1000)) ] || ok=0
    sleep 1.2  # reconcile runs at most once a second after events; let each repair settle
  done
  bg_stop drift; local bf=$BGF bc=$BGC bn=$BGN
  local repairs
  repairs=$(admin_get /metrics | awk '/^weir_reconcile_repairs_total/ {printf "%s%s", (k++ ? ", " : ""), $0}')
  figure "$sec" "repairs counted" "$repairs"
  pass_line "$sec" "reconcile restores each deleted ip rule, route and ::6 (time to repair)" "$times" \
    "each back within --reconcile-interval (${RECONCILE} s)" "$ok"
  figure "$sec" "background traffic meanwhile" \
    "$bf failed, $bc corrupt bytes of $bn connections (a TPROXY connection whose reply falls in a gap is lost)"
  pass_line "$sec" "background traffic: no corrupt bytes" "$bc of $bn connections" "0, > 0 connections" \
    $(( bc == 0 && bn > 0 ))
}

fault_kill9() {
  local sec="fault: kill -9 of the agent under load, restart"
  # New connections back to back in both directions (each one request/reply), and 20 established idle ones.
  bg "$POD" "$FDIR/kill-churn-out.log" "$LOAD" client --events --conns 20 --mix rr=1 --rounds-max 1 --think-ms 0 \
    --retry-ms 5 --connect-timeout-ms 10000 198.18.1.2:7000
  local c1=$BG_PID
  bg "$PEER" "$FDIR/kill-churn-in.log" "$LOAD" client --events --conns 20 --mix rr=1 --rounds-max 1 --think-ms 0 \
    --retry-ms 5 --connect-timeout-ms 10000 198.18.1.1:7000
  local c2=$BG_PID
  bg "$POD" "$FDIR/kill-held.log" "$LOAD" client --once --events --conns 20 --mix idle=1 --rounds-max 10 \
    --idle-ms 600000 198.18.1.2:7000
  local held=$BG_PID
  sleep 3
  local t_kill t_ready
  t_kill=$(now_ms)
  kill -KILL "$AGENT"; wait "$AGENT" 2>/dev/null || true
  # systemd's RestartSec=2 (systemd/weir.service): the agent is down for 2 s, then starts again.
  sleep 2
  local t_restart
  t_restart=$(now_ms)
  agent_start "$FDIR/agent-restarted.log" "${FAULT_ARGS[@]}" || true
  t_ready=$(now_ms)
  sleep 4
  kill -TERM "$c1" "$c2" 2>/dev/null; wait "$c1" "$c2" 2>/dev/null || true
  stop_pid "$held" KILL 1
  local dir f out=""
  for dir in out in; do
    f=$FDIR/kill-churn-$dir.log
    # failures: from the first to the last failed connection; successes while nothing listened: started after the
    # kill and finished before the new agent was ready (a connection that bypassed the proxy)
    local first last bypass fails late
    late=$(grep '^ev ' "$f" | grep -v 'outcome=ok' | awk -v r="$t_ready" '{
      for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["start_ms"] > r + 100) n++ } END {print n + 0}' || true)
    first=$(grep '^ev ' "$f" | grep -v 'outcome=ok' | sed 's/.* start_ms=\([0-9]*\).*/\1/' | sort -n | sed -n 1p || true)
    last=$(grep '^ev ' "$f" | grep -v 'outcome=ok' | sed 's/.* end_ms=\([0-9]*\).*/\1/' | sort -n | tail -n 1 || true)
    fails=$(grep '^ev ' "$f" | grep -vc 'outcome=ok' || true)
    bypass=$(grep '^ev .*outcome=ok' "$f" | awk -v k="$t_kill" -v r="$t_restart" '{
      for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["start_ms"] > k + 20 && v["end_ms"] < r - 20) n++ } END {print n + 0}' || true)
    local kinds waited
    kinds=$(grep '^ev ' "$f" | grep -v 'outcome=ok' | sed 's/.* outcome=\([a-z_]*\).*/\1/' | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}' || true)
    # the longest a successful connection took that started while the agent was down (its SYNs waited)
    waited=$(grep '^ev .*outcome=ok' "$f" | awk -v k="$t_kill" -v r="$t_restart" '{
      for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["start_ms"] > k && v["start_ms"] < r && v["dur_ms"] > m) m = v["dur_ms"] } END {print m + 0}' || true)
    eval "fails_$dir=\$fails bypass_$dir=\$bypass window_$dir=\$(( ${last:-0} - ${first:-0} )) kinds_$dir=\"\$kinds\" late_$dir=\$late waited_$dir=\$waited"
  done
  local held_seen
  held_seen=$(outcomes "$FDIR/kill-held.log")
  figure "$sec" "agent down (kill -9 to ready again, RestartSec=2 as in weir.service)" "$((t_ready - t_kill)) ms"
  figure "$sec" "new outbound connections (pod -> peer)" \
    "failed for $window_out ms ($fails_out: ${kinds_out:-none}); succeeded while nothing listened: $bypass_out"
  figure "$sec" "new inbound connections (peer -> pod, TPROXY)" \
    "none refused: their SYNs were dropped while the agent was down and retransmitted, the longest waited $waited_in ms; $fails_in failed (${kinds_in:-none}: established when it died); succeeded while nothing listened: $bypass_in"
  figure "$sec" "what the 20 established connections saw" "$held_seen"
  # A connection that succeeded while nothing listened went around the capture (direct): a stale conntrack entry
  # (a reset upstream connection's 4-tuple reused before the proxy deleted the entry, or an upstream still
  # connecting when the agent was killed: docs/proxy.md), not a missing rule: the table and its rules stay while
  # the agent is down. Gated on the soak's stated bound: at most 1 per 100,000 attempts made while down, rounded
  # down (0 for the few thousand here); every other attempt must be refused.
  local refused_out attempts_out bound_out
  refused_out=$(grep -c '^ev .*outcome=refused' "$FDIR/kill-churn-out.log" || true)
  attempts_out=$(( refused_out + bypass_out ))
  bound_out=$(( attempts_out / 100000 ))
  pass_line "$sec" "outbound: while down refused, direct (succeeded while nothing listened) <= 1 per 100,000; all succeed once ready" \
    "refused for $window_out ms ($refused_out refused, $bypass_out direct of $attempts_out attempts while down), $late_out failed after ready" \
    "> 0 refused, direct <= $bound_out (1 per 100,000 of $attempts_out), 0 failed after ready" \
    $(( refused_out > 0 && bypass_out <= bound_out && late_out == 0 ))
  pass_line "$sec" "inbound (TPROXY): none bypassed the proxy while down, none failed once ready" \
    "new connections waited up to $waited_in ms, $bypass_in bypassed the proxy, $late_in failed after ready" \
    "0 bypassed, 0 failed after ready" $(( bypass_in == 0 && late_in == 0 ))
  local tables rules owned
  tables=$(ip netns exec "$POD" nft list tables | wc -l)
  rules=$(ip -n "$POD" -4 rule | grep -c 'lookup 133' || true)
  owned=$(metric weir_nftables_table_owned)
  pass_line "$sec" "the restarted agent re-claims the table, nothing duplicated" \
    "$tables table, $rules ip rule, owner: ${owned:-no metric (agent not answering)}" "1 table, 1 ip rule, owner 1" \
    $(( tables == 1 && rules == 1 && ${owned:-0} == 1 ))
}

fault_reload() {
  local sec="fault: SIGHUP with a changed config under load"
  # A restarted agent reading a config file; then reloads that change capture settings (rules), proxy settings
  # (a new data plane takes over) and both, one every 2 s, while everything keeps flowing.
  fault_agent_stop
  local conf=$FDIR/weir.conf
  write_conf() { # EXCLUDE_PORTS BUFFER
    printf 'ISTIO_INBOUND_INTERCEPTION_MODE=TPROXY\nISTIO_SERVICE_CIDR=*\nISTIO_INBOUND_PORTS=*\n' >"$conf.tmp"
    printf 'ISTIO_LOCAL_EXCLUDE_PORTS=%s\nWEIR_BUFFER_LIMIT=%s\nWEIR_IDLE_TIMEOUT=%ss\n' "$1" "$2" "$IDLE" >>"$conf.tmp"
    mv "$conf.tmp" "$conf"
  }
  write_conf 22 64KiB
  # net.ipv4.tcp_migrate_req stays at the namespace's 0: a reload hands the same listening sockets to the new data
  # plane (nothing is closed, so there is nothing to migrate), and this fault shows it with the kernel's help off.
  agent_start "$FDIR/agent-reload.log" --config "$conf" --drain-timeout 5s || {
    pass_line "$sec" "agent starts with --config" "no" "ready" 0; return; }
  bg_start reload
  # Long-lived connections that must survive every reload: 40 idle ones with a round every 2 s, 10 of 256 MB.
  bg "$POD" "$FDIR/reload-held.log" "$LOAD" client --once --events --conns 40 --mix idle=1 --rounds-max 15 \
    --idle-ms 2000 198.18.1.2:7000 '[2001:db8:1::2]:7000'
  local held=$BG_PID
  bg "$PEER" "$FDIR/reload-bulk.log" "$LOAD" client --once --events --conns 10 --mix bulk=1 --up 256M --down 256M \
    198.18.1.1:7000 '[2001:db8:1::1]:7000'
  local bulk=$BG_PID
  sleep 2
  local pid0=$AGENT i reloads=0
  for i in 1 2 3 4 5 6; do
    case $((i % 3)) in
      1) write_conf "22,10250" 64KiB ;;    # capture settings only
      2) write_conf "22,10250" 128KiB ;;   # proxy settings only: a new data plane
      0) write_conf 22 64KiB ;;            # both
    esac
    kill -HUP "$AGENT"
    reloads=$((reloads + 1))
    sleep 2
  done
  local i2
  for ((i2 = 0; i2 < 600; i2++)); do kill -0 "$held" 2>/dev/null || kill -0 "$bulk" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$held" 2>/dev/null || kill -0 "$bulk" 2>/dev/null; then
    { ip netns exec "$POD" ss -Htnpi; echo; ip netns exec "$PEER" ss -Htnpi; } >"$FDIR/reload-stuck-sockets.txt" 2>&1
  fi
  stop_pid "$held" TERM 30; stop_pid "$bulk" TERM 30
  bg_stop reload; local bf=$BGF bc=$BGC bn=$BGN
  local ok_reloads fail_reloads hs bs
  ok_reloads=$(metric weir_config_reloads_total); fail_reloads=$(metric weir_config_reload_failures_total)
  hs=$(outcomes "$FDIR/reload-held.log"); bs=$(outcomes "$FDIR/reload-bulk.log")
  figure "$sec" "reloads" "$reloads SIGHUPs: $ok_reloads applied, $fail_reloads refused; $(grep -c 'proxy=replaced' "$FDIR/agent-reload.log" || true) replaced the data plane"
  figure "$sec" "what the clients saw" "held idle: $hs; bulk 256 MB each way: $bs; background: $bf failed of $bn"
  local same=0 pid_note
  [ "$pid0" = "$AGENT" ] && running "$AGENT" && same=1
  if [ "$same" = 1 ]; then pid_note="same, running"; else pid_note=$(gone_note "$AGENT"); fi
  pass_line "$sec" "every reload applied, none refused, same process still running" \
    "$ok_reloads of $reloads applied, ${fail_reloads:-?} refused, pid $pid_note" \
    "all, 0, same pid" $(( ${ok_reloads:-0} == reloads && ${fail_reloads:-1} == 0 && same == 1 ))
  pass_line "$sec" "nothing established dropped: 40 long-lived and 10 bulk connections across every reload" \
    "held: $hs; bulk: $bs" "all ok" \
    $(( $(grep -c '^ev .*outcome=ok' "$FDIR/reload-held.log") == 40 && $(grep -c '^ev .*outcome=ok' "$FDIR/reload-bulk.log") == 10 ))
  # The listening sockets are never closed: each replacement took the old data plane's sockets (kept > 0, none
  # closed), so no handshake in a queue can be reset, and no new connection is (checked below).
  local replaced kept
  replaced=$(grep -c 'proxy=replaced' "$FDIR/agent-reload.log" || true)
  kept=$(grep 'event=reload_listeners' "$FDIR/agent-reload.log" | grep -vE ' kept=0( |$)' | grep -cE ' closed=0( |$)' || true)
  pass_line "$sec" "every new data plane took over the same listening sockets (none closed)" \
    "$kept of $replaced replacements: $(grep -o 'event=reload_listeners.*' "$FDIR/agent-reload.log" | sed 's/event=reload_listeners //' | sort | uniq -c | sed 's/^ *//' | tr '\n' ';')" \
    "all, > 0 replacements" $(( replaced > 0 && kept == replaced ))
  local ba bb
  ba=$(summary_of "$FDIR/reload-bg-out.log" client); bb=$(summary_of "$FDIR/reload-bg-in.log" client)
  pass_line "$sec" "background connections (new ones all along) reset or refused during $reloads reloads" \
    "$bf of $bn; by kind, ok/started: outbound $(grep -o '[a-z]*=[0-9]*/[0-9]*' <<<"$ba" | tr '\n' ' ')inbound $(grep -o '[a-z]*=[0-9]*/[0-9]*' <<<"$bb" | tr '\n' ' ')" \
    "0 of > 0" $(( bf == 0 && bn > 0 ))
  pass_line "$sec" "background connections: corrupted bytes" "$bc of $bn connections" "0, > 0 connections" \
    $(( bc == 0 && bn > 0 ))
}

fault_takeover() {
  local sec="fault: takeover by a new binary with a changed config under load"
  # Issue 20: `weir run --takeover` of another binary file with another --config replaces the running agent while
  # 1,000 long-lived connections stream (500 each way, 150 requests and replies 200 ms apart), 10 bulk ones move 256 MB
  # each way, and new connections come back to back both ways. Meanwhile an unprivileged user tries, in a loop, to
  # bind both capture ports and to lock the locks the agents hold.
  fault_agent_stop
  # Both namespaces on Linux's default upper bound (60999, not the topology's 65000): --tproxy-source-ports auto then
  # has 61000-65535 as on a node. With the topology's 535 ports, 250 long-lived inbound streams per family and
  # the churn's TIME_WAITs (reusable after 1 s) ran the inbound upstreams out of source ports (EADDRNOTAVAIL, 272
  # of 101,898 reset in one run): a limit of the test's ranges, measured by the soak's same-range line, not what
  # this fault is about.
  local ns
  for ns in "$POD" "$PEER"; do ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 60999"; done
  local run=/run/weir-stress-$$ conf=$FDIR/takeover.conf
  rm -rf "$run"
  printf 'WEIR_BUFFER_LIMIT=128KiB\nISTIO_LOCAL_EXCLUDE_PORTS=22,10250\n' >"$conf"
  agent_start "$FDIR/agent-takeover-old.log" "${FAULT_ARGS[@]}" --run-dir "$run" || {
    pass_line "$sec" "the first agent starts" "no" "ready" 0; return; }
  local old=$AGENT
  bg "$POD" "$FDIR/takeover-stream-out.log" "$LOAD" client --once --events --conns 500 --mix idle=1 --idle-ms 200 \
    --rounds 150 198.18.1.2:7000 '[2001:db8:1::2]:7000'
  local so=$BG_PID
  bg "$PEER" "$FDIR/takeover-stream-in.log" "$LOAD" client --once --events --conns 500 --mix idle=1 --idle-ms 200 \
    --rounds 150 198.18.1.1:7000 '[2001:db8:1::1]:7000'
  local si=$BG_PID
  bg "$POD" "$FDIR/takeover-bulk.log" "$LOAD" client --once --events --conns 10 --mix bulk=1 --up 256M --down 256M \
    198.18.1.2:7000 '[2001:db8:1::2]:7000'
  local bk=$BG_PID
  bg "$POD" "$FDIR/takeover-churn-out.log" "$LOAD" client --events --conns 20 --mix rr=1 --rounds-max 1 \
    --think-ms 0 --retry-ms 5 198.18.1.2:7000 '[2001:db8:1::2]:7000'
  local co=$BG_PID
  bg "$PEER" "$FDIR/takeover-churn-in.log" "$LOAD" client --events --conns 20 --mix rr=1 --rounds-max 1 \
    --think-ms 0 --retry-ms 5 198.18.1.1:7000 '[2001:db8:1::1]:7000'
  local ci=$BG_PID
  # The squatter logs every attempt's outcome by errno; it runs until SIGTERM.
  bg "$POD" "$FDIR/takeover-squatter.log" setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c '
import collections, fcntl, glob, signal, socket, sys
seen = collections.Counter(); stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
locks = sys.argv[1:]
print("squatting", flush=True)
while not stop:
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for port in (15001, 15006):
            s = socket.socket(family)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                s.bind((host, port)); s.listen(8); seen["port_got"] += 1
            except OSError as e:
                seen["port_" + (e.errno and __import__("errno").errorcode[e.errno] or "?")] += 1
            s.close()
    for path in locks:
        try:
            with open(path) as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); seen["lock_got"] += 1
        except OSError as e:
            seen["lock_" + (e.errno and __import__("errno").errorcode[e.errno] or "?")] += 1
print("squatter " + " ".join("%s=%d" % kv for kv in sorted(seen.items())), flush=True)
' "$run/agent.lock" /run/weir/dataplane-*.lock
  local sq=$BG_PID
  # Every streaming connection open on the first agent before it is replaced.
  local i active=0
  for ((i = 0; i < 100; i++)); do
    active=$(metric weir_proxy_connections_active); [ "${active:-0}" -ge 1010 ] && break; sleep 0.1
  done
  sleep 1
  cp "$WEIR" "$FDIR/weir-new"
  local t0 t_exit="" held_before
  held_before=$(metric weir_proxy_connections_active)
  t0=$(now_ms)
  WEIR=$FDIR/weir-new agent_start "$FDIR/agent-takeover-new.log" "${FAULT_ARGS[@]}" --run-dir "$run" \
    --takeover --config "$conf" || true
  local new=$AGENT
  # The old agent's exit (a zombie until reaped counts as exited).
  for ((i = 0; i < 3000; i++)); do
    if [ ! -e "/proc/$old" ] || [ "$(awk '{print $3}' "/proc/$old/stat" 2>/dev/null)" = Z ]; then t_exit=$(now_ms); break; fi
    sleep 0.01
  done
  local old_status
  old_status=$(status_of "$old")
  sleep 4
  local ready
  ready=$(admin_get /readyz | sed -n 1p)
  for p in "$so" "$si" "$bk"; do
    for ((i = 0; i < 900; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  stop_pid "$so" TERM 5; stop_pid "$si" TERM 5; stop_pid "$bk" TERM 5
  kill -TERM "$co" "$ci" 2>/dev/null; wait "$co" "$ci" 2>/dev/null || true
  stop_pid "$sq" TERM 5
  local streams bulk churn_fail=0 churn_n=0 corrupt=0 f sm
  streams=$(( $(grep -c '^ev .*outcome=ok' "$FDIR/takeover-stream-out.log" || true) + $(grep -c '^ev .*outcome=ok' "$FDIR/takeover-stream-in.log" || true) ))
  bulk=$(grep -c '^ev .*outcome=ok' "$FDIR/takeover-bulk.log" || true)
  for f in stream-out stream-in bulk churn-out churn-in; do
    sm=$(summary_of "$FDIR/takeover-$f.log" client)
    [ -n "$sm" ] || { corrupt=$((corrupt + 1)); continue; }  # a client without its summary line: counted as corrupt
    corrupt=$(( corrupt + $(kv "$sm" corrupt_bytes) ))
    case $f in churn-*) churn_fail=$(( churn_fail + $(kv "$sm" failed) )); churn_n=$(( churn_n + $(kv "$sm" started) )) ;; esac
  done
  local done_line took moved lost
  done_line=$(grep -o 'event=handover_done.*' "$FDIR/agent-takeover-old.log" | tail -n 1 || true)
  moved=$(grep -o 'event=takeover_done.*' "$FDIR/agent-takeover-new.log" | sed -n 's/.* connections=\([0-9]*\).*/\1/p' | tail -n 1 || true)
  lost=$(grep -o 'event=takeover_done.*' "$FDIR/agent-takeover-new.log" | sed -n 's/.* lost=\([0-9]*\).*/\1/p' | tail -n 1 || true)
  figure "$sec" "time from the new process's start to the old one's exit" \
    "$( [ -n "$t_exit" ] && echo "$((t_exit - t0)) ms" || echo "the old agent did not exit within 30 s"), with ${held_before:-?} connections open; old agent: ${done_line:-no handover_done line}"
  pass_line "$sec" "every connection moved, none drained: 1,000 streaming and 10 bulk end intact" \
    "streams ok: $streams of 1000 ($(outcomes "$FDIR/takeover-stream-out.log"); $(outcomes "$FDIR/takeover-stream-in.log")), bulk ok: $bulk of 10; moved ${moved:-?}, lost ${lost:-?}; old agent exit ${old_status}" \
    "1000, 10, lost 0, exit 0 without a drain" \
    $(( streams == 1000 && bulk == 10 && ${lost:-1} == 0 && ${moved:-0} >= 1000 && old_status == 0 )) 
  pass_line "$sec" "new connections all along: none reset or refused, no corrupt byte" \
    "$churn_fail failed of $churn_n new connections (out: $(outcomes "$FDIR/takeover-churn-out.log"); in: $(outcomes "$FDIR/takeover-churn-in.log")); corrupt bytes of all clients: $corrupt" \
    "0 of > 0, 0" $(( churn_fail == 0 && churn_n > 0 && corrupt == 0 ))
  local sqline got tries
  sqline=$(grep '^squatter ' "$FDIR/takeover-squatter.log" | tail -n 1 || true)
  got=$(( $(kv "$sqline" port_got)+0 + $(kv "$sqline" lock_got)+0 ))
  tries=$(tr ' ' '\n' <<<"$sqline" | awk -F= 'NF == 2 {n += $2} END {print n + 0}')
  pass_line "$sec" "an unprivileged user squatting both ports and the locks through the takeover gets none; weir keeps serving" \
    "squatter (uid 65534) attempts by outcome: ${sqline#squatter }; /readyz after: $ready" \
    "> 0 attempts, 0 got, 200" $(( tries > 0 && got == 0 && ready == 200 ))
  AGENT=$new
  fault_agent_stop
  rm -rf "$run"
  for ns in "$POD" "$PEER"; do ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"; done
  agent_start "$FDIR/agent-after-takeover.log" "${FAULT_ARGS[@]}" || true
}

# fault_agent_stop: agent_stop, and its exit status kept for the check at the end (FAULT_EXITS: "pid=status ...")
fault_agent_stop() {
  agent_stop
  FAULT_EXITS+=" $AGENT=$AGENT_STATUS"
}

faults() {
  FDIR=$LOGS/faults
  FAULT_EXITS=""
  mkdir -p "$FDIR"
  BG_CONNS=100
  RECONCILE=${STRESS_RECONCILE_INTERVAL:-10}
  topo_up faul
  bg "$POD" "$FDIR/pod-server.log" "$LOAD" server 7000 198.18.1.1 2001:db8:1::1
  local pod_server=$BG_PID
  bg "$PEER" "$FDIR/peer-server.log" "$LOAD" server 7000 198.18.1.2 2001:db8:1::2
  local peer_server=$BG_PID
  wait_for_line "$FDIR/pod-server.log" READY 10; wait_for_line "$FDIR/peer-server.log" READY 10
  FAULT_ARGS=(-m TPROXY -b '*' -i '*' --idle-timeout "${IDLE}s" --drain-timeout 5s
              --reconcile-interval "${RECONCILE}s")
  if ! agent_start "$FDIR/agent.log" "${FAULT_ARGS[@]}"; then
    pass_line faults "agent starts" "no: $(tail -n 1 "$FDIR/agent.log")" "ready" 0; topo_down; return
  fi
  local f
  for f in ${STRESS_FAULTS:-dies blackhole vanish drift kill9 reload takeover}; do "fault_$f"; done
  fault_agent_stop
  # Every agent stopped with SIGTERM (not the one fault_kill9 kills) must exit 0; a crash (or a start that failed,
  # status of a process already gone) shows here even when the checks around it passed.
  local st ok=1
  for st in $FAULT_EXITS; do [ "${st#*=}" = 0 ] || ok=0; done
  pass_line faults "every agent stopped with SIGTERM exits 0" "$(tr ' ' '\n' <<<"$FAULT_EXITS" | grep . | sed 's/^/pid /; s/=/: status /' | paste -sd, | sed 's/,/, /g')" \
    "0 each" "$ok"
  stop_pid "$pod_server"; stop_pid "$peer_server"
  local ps qs
  ps=$(summary_of "$FDIR/pod-server.log" server); qs=$(summary_of "$FDIR/peer-server.log" server)
  local corrupt=$(( $(kv "$ps" corrupt_bytes)+0 + $(kv "$qs" corrupt_bytes)+0 ))
  local checked=$(( $(kv "$ps" bytes_checked)+0 + $(kv "$qs" bytes_checked)+0 ))
  pass_line faults "servers of all faults: corrupted bytes" \
    "$corrupt of $(awk -v b="$checked" 'BEGIN {printf "%.1f GB", b / 1e9}')$( [ -n "$ps" ] && [ -n "$qs" ] || echo "; a server printed no summary")" \
    "0, both servers' summaries, > 0 bytes checked" $(( corrupt == 0 && ${#ps} > 0 && ${#qs} > 0 && checked > 0 ))
  topo_down
}
