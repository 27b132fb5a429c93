#!/usr/bin/env bash
# Handover benchmark (issue 20): how long `weir run --takeover` takes to move 1,000 and 10,000 live connections
# from the running agent to the new one, from the new process's start to the old process's exit, and that every
# connection still answers afterwards. Numbers for BENCHMARKS.md, never pass/fail; it fails (non-zero) only when it
# measured nothing or a connection was lost (a handover bug, not a timing).
#
# Usage: WEIR=/path/to/weir bash scripts/bench/handover.sh OUTDIR     (writes OUTDIR/handover.tsv)
# Everything runs in two network namespaces made here (198.18.9.0/24) and deleted on exit, even on failure; only
# processes started here are signalled, by pid.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: handover.sh OUTDIR}
WEIR=${WEIR:?set WEIR to the weir binary}
SIZES=${HANDOVER_SIZES:-1000 10000}
ROUNDS=${HANDOVER_ROUNDS:-3}
mkdir -p "$OUT"
TSV=$OUT/handover.tsv
: > "$TSV"
WORK=$(mktemp -d /tmp/weir-handover.XXXXXX)
chmod 0755 "$WORK"   # the client runs as UID 1000 and reads load.py here
A=wtho-bench-a-$$; B=wtho-bench-b-$$
pids=()
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cleanup() {
  for p in "${pids[@]}"; do stop_pid "$p"; done
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
die() { echo "handover: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f" >&2; tail -5 "$f" >&2; done; exit 1; }
rec() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$TSV"; }   # connections round metric value

# 10,000 connections are 20,000 of each agent's descriptors (client and upstream sockets; pipes only while bytes are
# in flight), and as many of the client's and the server's. Raising the hard limit needs CAP_SYS_RESOURCE: where it
# cannot be raised, a size that does not fit is measured at the largest thousand that does, and the TSV says so.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
fit=$(( (nofile - 1500) / 2 / 1000 * 1000 ))
sizes=""
for n in $SIZES; do
  if [ "$n" -gt "$fit" ]; then
    echo "handover: $n connections need $((2 * n)) descriptors per agent; RLIMIT_NOFILE here is $nofile (hard," \
         "cannot be raised): measuring $fit instead" >&2
    printf '%s\t-\tlimited_from\t%s\n' "$fit" "$n" >> "$TSV"
    n=$fit
  fi
  sizes="$sizes $n"
done
SIZES=$sizes

ip netns add "$A"; ip netns add "$B"
ip link add eth0 netns "$A" type veth peer name eth0 netns "$B"
ip -n "$A" addr add 198.18.9.1/24 dev eth0; ip -n "$A" link set eth0 up; ip -n "$A" link set lo up
ip -n "$B" addr add 198.18.9.2/24 dev eth0; ip -n "$B" link set eth0 up; ip -n "$B" link set lo up
for ns in "$A" "$B"; do
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.core.somaxconn=16384
done

# The echo server (B), and a client (A, UID 1000) that holds N connections (load.py hold: "held" once they are open;
# a line on stdin makes every connection echo once and prints "ok=K failed=F"). The client reads its copy here.
cp Tests/WeirKernelTests/Support/load.py "$WORK/load.py"
chmod 0644 "$WORK/load.py"
ip netns exec "$B" python3 Tests/WeirKernelTests/Support/load.py echo 7000 > "$WORK/echo.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$WORK/echo.log" && break; sleep 0.05; done

agent() { # log: a weir run in A, in the background; prints its pid
  ip netns exec "$A" "$WEIR" run --run-dir "$WORK/run" -i '*' -b '*' --max-connections 30000 \
    --admin-address 127.0.0.1:15020 "${@:2}" > "$1" 2>&1 &
  echo $!
}
gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
ready() { for _ in $(seq 300); do grep -q 'event=ready' "$1" && return 0; sleep 0.02; done; return 1; }

for n in $SIZES; do
  for r in $(seq "$ROUNDS"); do
    echo "handover: $n connections, round $r" >&2
    old=$(agent "$WORK/old.log"); pids+=("$old")
    ready "$WORK/old.log" || die "the first agent did not get ready: $(tail -5 "$WORK/old.log")"
    coproc HOLD { ip netns exec "$A" setpriv --reuid=1000 --regid=1000 --clear-groups /usr/bin/python3 \
      "$WORK/load.py" hold 198.18.9.2 7000 "$n" 2>&1; }
    hold_pid=$HOLD_PID; pids+=("$hold_pid")
    read -r -t 120 line <&"${HOLD[0]}" || die "the client did not open $n connections"
    [ "$line" = held ] || die "client: $line"
    # "held" means the kernel completed every handshake; the agent may still be accepting the last of them from its
    # queue (those would be the successor's to accept, not moved). Start once all are open in the agent.
    for _ in $(seq 600); do
      active=$(ip netns exec "$A" curl -s -m 2 http://127.0.0.1:15020/metrics \
        | awk '$1 == "weir_proxy_connections_active" {print int($2)}')
      [ "${active:-0}" -ge "$n" ] && break
      sleep 0.1
    done
    [ "${active:-0}" -ge "$n" ] || die "the first agent holds ${active:-no} connections, expected $n"
    t0=$(date +%s%N)
    new=$(agent "$WORK/new.log" --takeover); pids+=("$new")
    # Started in a command substitution, the agent is not this shell's child: its exit is seen in /proc, where it
    # stays as a zombie until init reaps it (seconds later on some machines): a zombie has exited.
    for _ in $(seq 60000); do gone "$old" && break; sleep 0.001; done
    gone "$old" || die "the old agent did not exit"
    t1=$(date +%s%N)
    ready "$WORK/new.log" || die "the new agent did not get ready: $(tail -5 "$WORK/new.log")"
    t2=$(date +%s%N)
    echo check >&"${HOLD[1]}"
    read -r -t 120 line <&"${HOLD[0]}" || die "the client did not answer the check"
    moved=$(sed -n 's/.*event=handover_done .*connections=\([0-9]*\).*/\1/p' "$WORK/old.log" | tail -1)
    took=$(sed -n 's/.*event=handover_done .*took_us=\([0-9]*\).*/\1/p' "$WORK/old.log" | tail -1)
    [ "${moved:-0}" -ge "$n" ] || die "the old agent handed over ${moved:-nothing}, expected $n: $(tail -5 "$WORK/old.log")"
    [[ $line == "ok=$n failed=0" ]] || die "after the handover: $line (expected ok=$n failed=0)"
    rec "$n" "$r" start_to_old_exit_ms "$(( (t1 - t0) / 1000000 ))"
    rec "$n" "$r" start_to_ready_ms "$(( (t2 - t0) / 1000000 ))"
    rec "$n" "$r" old_handover_ms "$(( ${took:-0} / 1000 ))"
    rec "$n" "$r" moved "$moved"
    answered=${line#ok=}
    rec "$n" "$r" answered_after "${answered%% *}"
    exec {HOLD[1]}>&-
    stop_pid "$hold_pid"
    # Not this shell's child either: wait in /proc until it is gone, so the next round's agent can bind.
    kill "$new" 2>/dev/null || true
    for _ in $(seq 3000); do gone "$new" && break; sleep 0.01; done
  done
done
echo "handover: wrote $TSV" >&2
