# Syscalls per proxied connection, sourced by scripts/bench.sh (needs strace, wrk and `ip netns`).
#
# syscalls_per_connection NAMESPACE PID URL: attaches `strace -c -f` to every thread of the proxy process PID, runs
# wrk with `Connection: close` for SYSCALL_SECONDS (default 2) inside NAMESPACE toward URL (a port captured to that
# proxy), detaches, and prints `metric<TAB>value` lines for proxy.tsv: `syscalls` (all calls per connection),
# `syscall_conns` (connections wrk completed), then `syscalls_<call>` and `syscall_errors_<call>` per connection.
# Fails, saying why, when wrk completed no connection or strace counted no call: a 0 is a broken measure, never a
# good result. strace slows the proxy down a lot; only the counts are used, never the times.
syscalls_per_connection() {
  local ns=$1 pid=$2 url=$3 secs=${SYSCALL_SECONDS:-2} trace wrk_out strace_pid n rc=0
  command -v strace >/dev/null || { echo "bench: strace is missing (apt-get install strace)" >&2; return 1; }
  trace=$(mktemp /tmp/wtp-strace.XXXXXX)
  strace -c -f -qq -o "$trace" -p "$pid" &
  strace_pid=$!
  sleep 1   # strace attaches thread by thread: connections before it is done would go half counted
  wrk_out=$(ip netns exec "$ns" wrk -t1 -c32 -d"${secs}s" -H "Connection: close" "$url") || rc=$?
  sleep 0.5 # the proxy closes its side of the last connections after wrk
  kill -INT "$strace_pid" 2>/dev/null || true
  wait "$strace_pid" 2>/dev/null || true
  n=$(awk '/requests in/ {print $1}' <<<"$wrk_out")
  python3 - "$trace" "${n:-0}" "$rc" <<'PY' || rc=1
import sys
trace, n, wrk_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
calls = {}
for line in open(trace):
    f = line.split()
    # strace -c rows: % time, seconds, usecs/call, calls, [errors], syscall; then a "total" row.
    if len(f) in (5, 6) and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = (int(f[3]), int(f[4]) if len(f) == 6 else 0)
total = sum(c for c, _ in calls.values())
if wrk_rc != 0 or n <= 0 or total <= 0:
    sys.exit("bench: syscalls per connection: wrk exited %d after %d connections and strace counted %d syscalls: "
             "the measure is broken" % (wrk_rc, n, total))
print("syscalls\t%.3f" % (total / n))
print("syscall_conns\t%d" % n)
for name, (c, e) in sorted(calls.items(), key=lambda kv: -kv[1][0]):
    print("syscalls_%s\t%.4f" % (name, c / n))
    if e:
        print("syscall_errors_%s\t%.4f" % (name, e / n))
PY
  rm -f "$trace"
  return $rc
}
