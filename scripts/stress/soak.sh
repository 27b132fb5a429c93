# Soak (sourced by scripts/stress.sh): `weir run` with 1,000 concurrent connections for STRESS_SOAK_SECONDS, half
# outbound (pod -> peer, captured by -i '*' to 15001), half inbound (peer -> pod, captured by -b '*' to 15006),
# IPv4 and IPv6, mixing bulk transfers, small request/replies, long idle connections and resets from either end.
# Every byte is checked at both ends. Then: descriptors and RSS against the idle baseline, and idle CPU.

soak() { # MODE (REDIRECT or TPROXY)
  local mode=$1 sec="soak $1" tag
  tag=$(tr 'A-Z' 'a-z' <<<"$1" | cut -c1-4)
  topo_up "s$tag"
  local dir=$LOGS/soak-$1
  mkdir -p "$dir"
  bg "$POD" "$dir/pod-server.log" "$LOAD" server 7000 198.18.1.1 2001:db8:1::1
  local pod_server=$BG_PID
  bg "$PEER" "$dir/peer-server.log" "$LOAD" server 7000 198.18.1.2 2001:db8:1::2
  local peer_server=$BG_PID
  wait_for_line "$dir/pod-server.log" READY 10 && wait_for_line "$dir/peer-server.log" READY 10 || {
    pass_line "$sec" "servers start" "no" "they listen" 0; topo_down; return; }

  agent_start "$dir/agent.log" -m "$mode" -b '*' -i '*' --idle-timeout "${IDLE}s" --drain-timeout 5s || {
    pass_line "$sec" "agent starts" "no: $(tail -1 "$dir/agent.log")" "ready" 0; topo_down; return; }
  sleep 2
  # Any measurement of the agent that fails (it exited) sets gone: every check that rests on one then fails.
  local fd0 rss0 anon0 cpu0 gone=""
  fd0=$(fd_kinds "$AGENT") && rss0=$(rss_kb "$AGENT") && anon0=$(anon_kb "$AGENT") \
    && cpu0=$(idle_cpu_percent "$AGENT" "$IDLE_SAMPLE") || gone=$(gone_note "$AGENT")
  if [ -n "$gone" ]; then
    pass_line "$sec" "agent up before the load (idle baseline)" "$gone" "up" 0
    stop_pid "$pod_server"; stop_pid "$peer_server"; agent_stop; topo_down; return
  fi
  figure "$sec" "idle before load: RSS (anonymous), descriptors (sockets pipes other), CPU" \
    "$(mib "$rss0") ($(mib "$anon0")), $fd0, ${cpu0}%"

  local half=$((SOAK_CONNS / 2)) mix=bulk=5,rr=55,idle=25,rstc=8,rsts=7
  # Idle connections pause 0.4 x the idle timeout between rounds: long-lived, mostly silent, never reaped (the
  # margin covers a load generator that, on a saturated machine, serves a timer late).
  local idle_ms=$((IDLE * 400))
  say "$sec: $SOAK_CONNS connections for ${SOAK}s"
  bg "$POD" "$dir/out-client.log" "$LOAD" client --conns "$half" --seconds "$SOAK" --mix "$mix" --idle-ms "$idle_ms" \
    --bulk-max 16M --progress 30 198.18.1.2:7000 '[2001:db8:1::2]:7000'
  local out_client=$BG_PID
  bg "$PEER" "$dir/in-client.log" "$LOAD" client --conns "$half" --seconds "$SOAK" --mix "$mix" --idle-ms "$idle_ms" \
    --bulk-max 16M --progress 30 198.18.1.1:7000 '[2001:db8:1::1]:7000'
  local in_client=$BG_PID

  local peak=0 peak_anon=0 peak_active=0 r a alive=1 t_end=$(( $(date +%s) + SOAK + 120 ))
  while kill -0 "$out_client" 2>/dev/null || kill -0 "$in_client" 2>/dev/null; do
    r=$(rss_kb "$AGENT") || { alive=0; break; }
    [ "$r" -gt "$peak" ] && peak=$r
    r=$(anon_kb "$AGENT") || { alive=0; break; }
    [ "$r" -gt "$peak_anon" ] && peak_anon=$r
    a=$(metric weir_proxy_connections_active); [ "${a:-0}" -gt "$peak_active" ] && peak_active=${a:-0}
    [ "$(date +%s)" -gt "$t_end" ] && break
    sleep 1
  done
  wait "$out_client" "$in_client" 2>/dev/null || true
  local t_stop
  t_stop=$(now_ms)
  local m
  m=$(admin_get /metrics)
  figure "$sec" "during load: peak RSS (anonymous), peak open proxied connections" \
    "$(mib "$peak") ($(mib "$peak_anon")), $peak_active"

  # Back to baseline: every socket of the load closed (descriptors as before, the worker pipe pools aside) and the
  # anonymous RSS within max(512 KiB, 5%) of the idle baseline, within twice the idle timeout. (VmRSS also counts
  # the code pages the load paged back in, after weir dropped its startup pages: reported, not judged.)
  local s0 p0 o0 s1 p1 o1 rss1 anon1 back_ms=-1 tol fd1
  read -r s0 p0 o0 <<<"$fd0"
  tol=$(( anon0 / 20 > 512 ? anon0 / 20 : 512 ))
  local limit=$((t_stop + 2 * IDLE * 1000))
  while [ -z "$gone" ]; do
    if ! { fd1=$(fd_kinds "$AGENT") && anon1=$(anon_kb "$AGENT"); }; then gone=$(gone_note "$AGENT"); break; fi
    read -r s1 p1 o1 <<<"$fd1"
    if [ "$s1" -le "$s0" ] && [ "$o1" -le "$o0" ] && [ "$anon1" -le $((anon0 + tol)) ]; then
      back_ms=$(( $(now_ms) - t_stop )); break
    fi
    [ "$(now_ms)" -ge "$limit" ] && break
    sleep 0.2
  done
  local cpu1=""
  if [ -z "$gone" ]; then
    cpu1=$(idle_cpu_percent "$AGENT" "$IDLE_SAMPLE") && fd1=$(fd_kinds "$AGENT") && rss1=$(rss_kb "$AGENT") \
      && anon1=$(anon_kb "$AGENT") || gone=$(gone_note "$AGENT")
  fi
  if [ -n "$gone" ]; then s1=-1 p1=-1 o1=-1 rss1=0 anon1=0 cpu1=""; else read -r s1 p1 o1 <<<"$fd1"; fi

  stop_pid "$pod_server"; stop_pid "$peer_server"
  local oc ic ps qs
  oc=$(summary_of "$dir/out-client.log" client); ic=$(summary_of "$dir/in-client.log" client)
  ps=$(summary_of "$dir/pod-server.log" server); qs=$(summary_of "$dir/peer-server.log" server)
  agent_stop
  figure "$sec" "outbound client" "${oc#client }"
  figure "$sec" "inbound client" "${ic#client }"
  figure "$sec" "pod server (inbound upstream)" "${ps#server }"
  figure "$sec" "peer server (outbound upstream)" "${qs#server }"
  # A load process that died prints no summary line: what it would have counted is unknown, and the checks that
  # sum the four summaries fail (summaries=0).
  local summaries=1
  [ -n "$oc" ] && [ -n "$ic" ] && [ -n "$ps" ] && [ -n "$qs" ] || summaries=0
  local conns=$(( $(kv "$oc" started)+0 + $(kv "$ic" started)+0 ))
  local checked=$(( $(kv "$oc" bytes_checked)+0 + $(kv "$ic" bytes_checked)+0 + $(kv "$ps" bytes_checked)+0 \
    + $(kv "$qs" bytes_checked)+0 ))
  local corrupt=$(( $(kv "$oc" corrupt_bytes)+0 + $(kv "$ic" corrupt_bytes)+0 + $(kv "$ps" corrupt_bytes)+0 \
    + $(kv "$qs" corrupt_bytes)+0 ))
  local failed=$(( $(kv "$oc" failed)+0 + $(kv "$ic" failed)+0 + $(kv "$ps" unexpected)+0 + $(kv "$qs" unexpected)+0 ))
  local direct=$(( $(kv "$ps" direct)+0 + $(kv "$qs" direct)+0 ))
  local missing=""
  [ "$summaries" = 1 ] || missing="; a load process printed no summary (out client, in client, pod server, peer server: $( for x in "$oc" "$ic" "$ps" "$qs"; do [ -n "$x" ] && printf 'y' || printf 'n'; done))"
  local gb
  gb=$(awk -v b="$checked" 'BEGIN {printf "%.1f", b / 1e9}')
  figure "$sec" "proxied" "$conns connections, $gb GB checked; metrics: $(awk '/^weir_proxy_(resets|idle_timeouts|buffer_full|copy_fallbacks|descriptor_exhaustion|refused_max_connections)_total / {printf "%s=%s ", $1, $2}' <<<"$m")"

  pass_line "$sec" "corrupted bytes (checked at both ends)" "$corrupt of $gb GB$missing" "0, all four summaries" \
    $(( corrupt == 0 && summaries == 1 ))
  pass_line "$sec" "connections that failed unexpectedly" \
    "$failed of $conns (clients: $(kv "$oc" failed)+$(kv "$ic" failed), servers: $(kv "$ps" unexpected)+$(kv "$qs" unexpected))$missing" \
    "0 of > 0, all four summaries" $(( failed == 0 && conns > 0 && summaries == 1 ))
  # A new connection that reuses the 4-tuple of a proxy upstream flow that ended with a reset from the far side
  # matches that flow's stale conntrack entry (no NAT, no TPROXY decision) and goes around the proxy, unless the
  # proxy deleted the entry first (docs/proxy.md). Before it did, 575 of 112,000 REDIRECT and 3,558 of 136,000
  # TPROXY soak connections went around; what is left is the race between the reset reaching the kernel and the
  # worker deleting the entry (1 of 347,682 in a TPROXY soak of 300 s), which cannot be closed yet. Gated on a
  # stated bound: at most 1 per 100,000 connections, rounded down (so 0 in a run of fewer than 100,000).
  local direct_bound=$(( conns / 100000 ))
  pass_line "$sec" "new connections that went around the proxy (the server saw the client's own address and port)" \
    "$direct of $conns$missing" "<= 1 per 100,000 (bound: $direct_bound for this run's $conns connections)" \
    $(( direct <= direct_bound && conns > 0 && summaries == 1 ))
  if [ "$mode" = TPROXY ]; then
    # TPROXY keeps the client's address on the upstream connection to the application: with the port the kernel
    # picks from the pod's ip_local_port_range, the same one the clients pick from (both namespaces keep Linux's
    # default here), the upstream collided with a client's connection on one 4-tuple (73 of 21,139 failed). The
    # upstream's port now comes from --tproxy-source-ports (auto: above that range). At the default 300 s the
    # inbound half is well over 100,000 connections.
    local istarted ifailed
    istarted=$(( $(kv "$ic" started)+0 )); ifailed=$(( $(kv "$ic" failed)+0 ))
    pass_line "$sec" "inbound connections, clients and pod on the same ephemeral port range" \
      "$ifailed failed of $istarted (source ports $(grep -m1 -o 'tproxy_source_ports=[^ ]*' "$dir/agent.log" | cut -d= -f2))$missing" \
      "0 failed of >= 100,000 (when the soak runs >= 300 s; this run: ${SOAK} s)" \
      $(( ifailed == 0 && (istarted >= 100000 || SOAK < 300) && istarted > 0 && summaries == 1 ))
  fi
  pass_line "$sec" "agent up through the load, exit 0 on SIGTERM" \
    "alive=$alive status=$AGENT_STATUS${gone:+; $gone}" "up, 0" $(( alive == 1 && AGENT_STATUS == 0 ))
  # Each worker keeps up to 16 empty pipes (2 descriptors each) for the next bulk transfer: bounded, not a leak.
  local workers pool
  workers=$(grep -m1 -o 'workers=[0-9]*' "$dir/agent.log" | cut -d= -f2 || true)
  pool=$(( 2 * 16 * ${workers:-0} ))
  pass_line "$sec" "descriptors leaked" \
    "$( [ -n "$gone" ] && echo "$gone" || echo "sockets $s0 -> $s1, other $o0 -> $o1, pipes $p0 -> $p1 (pool cap $pool)")" \
    "agent up; sockets and other as before, pipes <= pool cap" \
    $(( ${#gone} == 0 && s1 == s0 && o1 == o0 && p1 <= p0 + pool ))
  pass_line "$sec" "RSS back to baseline after the load (anonymous: heap, stacks, buffers)" \
    "$(mib "$anon0") idle, $(mib "$peak_anon") peak, $( [ -n "$gone" ] && echo "$gone" || echo "$(mib "$anon1") after; back in $( [ "$back_ms" -ge 0 ] && echo "${back_ms} ms" || echo never)")" \
    "agent up; <= idle + max(512 KiB, 5%) within $((2 * IDLE)) s" $(( ${#gone} == 0 && back_ms >= 0 ))
  figure "$sec" "VmRSS (with file pages)" "$(mib "$rss0") idle, $(mib "$peak") peak, $( [ -n "$gone" ] && echo "agent exited" || echo "$(mib "$rss1") after")"
  pass_line "$sec" "CPU when idle (after the load)" \
    "$( [ -n "$gone" ] && echo "$gone" || echo "${cpu1}% of one CPU over ${IDLE_SAMPLE} s") (before: ${cpu0}%)" \
    "agent up; <= 1%" "$(awk -v c="$cpu1" 'BEGIN {print (c != "" && c <= 1.0) ? 1 : 0}')"
  topo_down
}

