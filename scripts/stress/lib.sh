# Helpers for scripts/stress.sh (sourced): namespaces, the agent, measurements of one process, the summary.
# Everything runs inside network namespaces named wst-<pid of stress.sh>-*, deleted on exit (trap in stress.sh).

NS_LIST=()
PIDS=()

say() { printf 'stress: %s\n' "$*" >&2; }

# --- the summary -------------------------------------------------------------------------------------------------

# pass_line SECTION CHECK MEASURED CRITERION OK(0|1): one line of the summary table; OK=1 passes.
pass_line() {
  local verdict=FAIL
  [ "$5" = 1 ] && verdict=pass
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$verdict" >> "$SUMMARY"
  say "[$verdict] $1: $2: $3 ($4)"
}

# known_issue SECTION WHAT MEASURED: a problem make stress found and measures every run, not fixed yet (listed on
# its own in the report, not pass/fail; BENCHMARKS.md says why).
known_issue() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$KNOWN"
  say "known issue: $1: $2: $3"
}

# figure SECTION MEASURE VALUE: a measured number for the report (not pass/fail).
figure() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$FIGURES"
  say "$1: $2: $3"
}

# --- processes ---------------------------------------------------------------------------------------------------

# bg NS LOG CMD...: starts CMD in namespace NS in the background, output to LOG; the pid is in $BG_PID.
bg() {
  local ns=$1 log=$2; shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 &
  BG_PID=$!
  PIDS+=("$BG_PID")
}

# stop_pid PID [SIGNAL] [TIMEOUT_S]: signals one of our processes and waits for it (SIGKILL after the timeout).
stop_pid() {
  local pid=$1 sig=${2:-TERM} t=${3:-30} i
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < t * 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

# exit status of a background pid (waits for it)
status_of() { local s=0; wait "$1" 2>/dev/null || s=$?; echo "$s"; }

wait_for_line() { # FILE TEXT TIMEOUT_S
  local i
  for ((i = 0; i < $3 * 20; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

# --- namespaces ------------------------------------------------------------------------------------------------

ns_add() { # NAME: a fresh namespace with lo up and the per-namespace sysctls a load generator needs
  ip netns add "$1"
  NS_LIST+=("$1")
  ip -n "$1" link set lo up
  # Per network namespace (never the machine's own): enough ephemeral ports for tens of thousands of short
  # connections, and TIME_WAIT reuse for the clients' new connections.
  ip netns exec "$1" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
  # The wide ranges here include weir's own ports: keep them out of the clients' ephemeral choice, or a client can
  # take 15006 while the agent is down and the restarted agent fails to bind (EADDRINUSE). A node's default range
  # (32768-60999) does not include them.
  ip netns exec "$1" sysctl -qw net.ipv4.ip_local_reserved_ports="15001,15006,15020"
}

ns_del() { # NAME: kills what of ours still runs inside, deletes it
  local p
  for p in $(ip netns pids "$1" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  ip netns delete "$1" 2>/dev/null || true
}

# veth NS_A DEV_A ADDRS_A NS_B DEV_B ADDRS_B: a veth pair; addresses are space-separated CIDRs
veth() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  local a
  for a in $3; do ip -n "$1" addr add "$a" dev "$2" $([[ $a == *:* ]] && echo nodad); done
  for a in $6; do ip -n "$4" addr add "$a" dev "$5" $([[ $a == *:* ]] && echo nodad); done
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

# topo_up TAG: the pod namespace (the agent and its application servers, 198.18.1.1 and 2001:db8:1::1) and a peer
# namespace (the world's servers and the inbound clients, 198.18.1.2 and 2001:db8:1::2), joined by a veth pair, as
# the agent's kernel tests wire them (Tests/WeirKernelTests/AgentLifecycleTests.swift).
topo_up() {
  POD=wst-$$-$1-pod
  PEER=wst-$$-$1-peer
  ns_add "$POD"
  ns_add "$PEER"
  veth "$POD" wsp0 "198.18.1.1/24 2001:db8:1::1/64" "$PEER" wsq0 "198.18.1.2/24 2001:db8:1::2/64"
}

topo_down() { ns_del "$POD"; ns_del "$PEER"; }

# --- the agent ---------------------------------------------------------------------------------------------------

# agent_start LOG ARGS...: `weir run ARGS` in the pod namespace; waits for /readyz 200. Sets AGENT and AGENT_LOG.
agent_start() {
  local log=$1; shift
  # STRESS_AGENT_ARGS: extra flags for every agent (e.g. --tproxy-source-ports kernel, to see a check fail).
  # shellcheck disable=SC2086
  bg "$POD" "$log" "$WEIR" run "$@" ${STRESS_AGENT_ARGS:-}
  AGENT=$BG_PID
  AGENT_LOG=$log
  local i
  for ((i = 0; i < 600; i++)); do
    if ! running "$AGENT"; then say "weir run exited: $(tail -5 "$log")"; return 1; fi
    [ "$(admin_get /readyz | sed -n 1p)" = 200 ] && return 0
    sleep 0.05
  done
  say "weir run not ready after 30 s: $(tail -5 "$log")"
  return 1
}

# agent_stop: SIGTERM and the exit status (in $AGENT_STATUS).
agent_stop() {
  kill -TERM "$AGENT" 2>/dev/null || true
  local i
  for ((i = 0; i < 600; i++)); do kill -0 "$AGENT" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$AGENT" 2>/dev/null && kill -KILL "$AGENT"
  AGENT_STATUS=$(status_of "$AGENT")
}

admin_get() { ip netns exec "$POD" "$LOAD" get 127.0.0.1 15020 "$1" 2>/dev/null || echo 0; }

# metric NAME_WITH_LABELS: its value in /metrics (empty if absent)
metric() { admin_get /metrics | awk -v m="$1" '$1 == m && !d {print $2; d = 1}'; }

# --- one process -------------------------------------------------------------------------------------------------
# Every measurement of a process fails (prints nothing, status 1) when the process is gone or a zombie (exited,
# its status not collected yet: kill -0 still succeeds, /proc/PID still exists, and its CPU time no longer moves).
# A caller turns that into a FAIL that says "agent exited", never into a 0 that passes. Under `set -e`, call them
# as `x=$(rss_kb "$AGENT") || ...`.

# running PID: the process exists and has not exited
running() {
  local st
  st=$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# status_kb PID FIELD: FIELD of /proc/PID/status (VmRSS, RssAnon, VmHWM), in KiB
status_kb() {
  local v
  running "$1" || return 1
  v=$(awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$v" ] && running "$1" || return 1
  echo "$v"
}

rss_kb() { status_kb "$1" VmRSS; }
# anon_kb PID: RssAnon, what the process itself holds (heap, stacks, buffers). VmRSS adds file pages: weir drops
# its startup pages once ready, and the code a load runs is paged back in from the page cache (shared, reclaimable).
anon_kb() { status_kb "$1" RssAnon; }
hwm_kb() { status_kb "$1" VmHWM; }
cpu_ticks() {
  local v
  running "$1" || return 1
  v=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$v" ] && running "$1" || return 1
  echo "$v"
}
# proc_start PID: when the process started (ticks after boot): tells a process from a later one with its pid
proc_start() { awk '{sub(/.*\) /, ""); print $20}' "/proc/$1/stat" 2>/dev/null; }
clk_tck() { getconf CLK_TCK; }

# fd_kinds PID: "sockets pipes other"
fd_kinds() {
  local s=0 p=0 o=0 t links
  running "$1" || return 1
  links=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null) || return 1
  running "$1" || return 1
  for t in $links; do
    case $t in socket:*) s=$((s + 1)) ;; pipe:*) p=$((p + 1)) ;; *) o=$((o + 1)) ;; esac
  done
  echo "$s $p $o"
}

# idle_cpu_percent PID SECONDS: CPU (user + system) of PID over SECONDS, in percent of one CPU; fails if the
# process is gone at either end (a process that exited meanwhile spends no CPU, and must not pass for idle)
idle_cpu_percent() {
  local t0 t1 b0 b1
  b0=$(proc_start "$1") && t0=$(cpu_ticks "$1") || return 1
  sleep "$2"
  t1=$(cpu_ticks "$1") && b1=$(proc_start "$1") || return 1
  [ "$b0" = "$b1" ] || return 1   # the pid was reused by another process
  awk -v d=$((t1 - t0)) -v s="$2" -v hz="$(clk_tck)" 'BEGIN {printf "%.2f", d / hz / s * 100}'
}

# gone_note PID: what a check says when a measurement of PID failed
gone_note() {
  if running "$1"; then echo "not measurable (/proc/$1 unreadable)"
  elif [ "$1" = "${AGENT:-}" ]; then echo "agent exited (pid $1; its log ends: $(tail -n 1 "$AGENT_LOG" 2>/dev/null))"
  else echo "process $1 exited"; fi
}

now_ms() { date +%s%3N; }

# kv LINE KEY: the value of KEY=value in a summary line
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }

# The last summary line ("client ..." or "server ...") of a log.
summary_of() { grep -E "^$2 " "$1" | tail -1; }

mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }

