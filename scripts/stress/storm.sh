# Connection storm (sourced by scripts/stress.sh): somaxconn 64 in the pod namespace (so every listen queue of the
# agent holds 64), and one client keeping 4,000 new connections in flight for STRESS_STORM_SECONDS. Another process
# probes /healthz every 50 ms throughout. Pass: the agent stays up, every probe is answered within 100 ms, and the
# listen overflows show in /metrics (weir_tcp_listen_overflows_total, TcpExt ListenOverflows of the namespace).

storm() {
  local sec="storm" dir=$LOGS/storm
  mkdir -p "$dir"
  topo_up stor
  ip netns exec "$POD" sysctl -qw net.core.somaxconn=64
  bg "$PEER" "$dir/peer-server.log" "$LOAD" server 7000 198.18.1.2 2001:db8:1::2
  local srv=$BG_PID
  wait_for_line "$dir/peer-server.log" READY 10
  agent_start "$dir/agent.log" -i '*' --idle-timeout "${IDLE}s" --drain-timeout 5s || {
    pass_line "$sec" "agent starts" "no" "ready" 0; topo_down; return; }
  local o0 n0 backlog
  o0=$(metric weir_tcp_listen_overflows_total)
  n0=$(ip netns exec "$POD" nstat -az TcpExtListenOverflows | awk '/TcpExtListenOverflows/ {print $2}')
  backlog=$(metric weir_proxy_listen_backlog)
  bg "$POD" "$dir/probe.log" "$LOAD" probe 127.0.0.1 15020 /healthz 50 $((STORM + 4))
  local probe=$BG_PID
  sleep 2
  bg "$POD" "$dir/storm-client.log" "$LOAD" client --conns 4000 --seconds "$STORM" --mix rr=1 --rounds-max 1 \
    --think-ms 0 --retry-ms 0 --connect-timeout-ms 5000 --grace 10 198.18.1.2:7000 '[2001:db8:1::2]:7000'
  local cl=$BG_PID
  local alive=1 peak=0 r
  while kill -0 "$cl" 2>/dev/null; do
    r=$(rss_kb "$AGENT") || { alive=0; break; }   # fails once the agent has exited
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.5
  done
  wait "$cl" 2>/dev/null || true
  wait "$probe" 2>/dev/null || true
  local o1 n1 m ready
  m=$(admin_get /metrics)
  o1=$(awk '$1 == "weir_tcp_listen_overflows_total" {print $2}' <<<"$m")
  n1=$(ip netns exec "$POD" nstat -az TcpExtListenOverflows | awk '/TcpExtListenOverflows/ {print $2}')
  ready=$(admin_get /readyz | sed -n 1p)
  # A connection after the storm, through the agent, checked end to end.
  local after
  after=$(ip netns exec "$POD" "$LOAD" client --once --conns 4 --mix rr=1 198.18.1.2:7000 '[2001:db8:1::2]:7000')
  stop_pid "$srv"
  agent_stop
  local c p
  c=$(summary_of "$dir/storm-client.log" client)
  p=$(grep '^probe ' "$dir/probe.log" | tail -n 1)
  local secs started
  secs=$(kv "$c" seconds); started=$(kv "$c" started)
  figure "$sec" "storm client (4,000 connections in flight, listen queues of $backlog)" \
    "$started connections in ${secs} s ($(awk -v n="$started" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')/s attempted), $(kv "$c" ok) ok, $(kv "$c" connect_timeout) connect timeouts, $(kv "$c" failed) failed, $(kv "$c" corrupt_bytes) corrupt bytes"
  figure "$sec" "agent during the storm" "peak RSS $(mib "$peak"); $(awk '/^weir_proxy_(connections_accepted|refused_max_connections|descriptor_exhaustion)_total / {printf "%s=%s ", $1, $2}' <<<"$m")"
  figure "$sec" "admin probes of /healthz every 50 ms" "${p#probe }"
  pass_line "$sec" "the agent stays up and serves" \
    "alive=$alive, /readyz $ready, a connection after the storm: $(kv "$after" ok) of 4 ok; exit $AGENT_STATUS" \
    "up, 200, 4 of 4, 0" $(( alive == 1 && ready == 200 && $(kv "$after" ok)+0 == 4 && AGENT_STATUS == 0 ))
  pass_line "$sec" "the admin endpoint answers every probe within 100 ms" \
    "$(kv "$p" n) probes: $(kv "$p" failed) failed, $(kv "$p" over_100ms) over 100 ms, slowest $(kv "$p" max_ms) ms, p99 $(kv "$p" p99_ms) ms" \
    "> 0 probes, 0 failed, 0 over 100 ms" \
    $(( $(kv "$p" n)+0 > 0 && $(kv "$p" failed)+0 == 0 && $(kv "$p" over_100ms)+0 == 0 ))
  pass_line "$sec" "listen overflows show in /metrics" \
    "weir_tcp_listen_overflows_total $o0 -> $o1 (TcpExt ListenOverflows of the namespace: $n0 -> $n1)" \
    "it grows" $(( ${o1:-0} > ${o0:-0} ))
  pass_line "$sec" "storm connections: corrupted bytes" "$( [ -n "$c" ] && echo "$(kv "$c" corrupt_bytes) of $(kv "$c" started) connections" || echo "no client summary")" \
    "0, > 0 connections" $(( ${#c} > 0 && $(kv "$c" corrupt_bytes)+0 == 0 && $(kv "$c" started)+0 > 0 ))
  topo_down
}
