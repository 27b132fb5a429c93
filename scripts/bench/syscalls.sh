# Syscalls per proxied connection (sourced by scripts/bench.sh; needs bash, strace, wrk and `ip netns`).
#
# syscalls_per_connection NAMESPACE PID URL OUT: attaches `strace -c -f` to every thread of the proxy PID, runs wrk
# with `Connection: close` for SECONDS (default 2) inside NAMESPACE toward URL (captured to that proxy), detaches,
# and writes OUT: one line `total <syscalls per connection> <connections>`, then `<syscall> <calls per connection>
# <errors per connection>` for each call. Fails loudly when wrk completed no connection or strace counted no call:
# a count of 0 is a broken measure, never a good result.
syscalls_per_connection() {
  local ns=$1 pid=$2 url=$3 out=$4 secs=${SYSCALL_SECONDS:-2} trace wrk_out strace_pid n
  trace=$(mktemp /tmp/wtp-strace.XXXXXX)
  strace -c -f -qq -o "$trace" -p "$pid" &
  strace_pid=$!
  sleep 1   # strace attaches thread by thread; connections before it is done would go uncounted
  wrk_out=$(ip netns exec "$ns" wrk -t1 -c32 -d"${secs}s" -H "Connection: close" "$url")
  sleep 0.5 # the proxy closes its last connections after wrk's
  kill -INT "$strace_pid"
  wait "$strace_pid" 2>/dev/null || true
  n=$(awk '/requests in/ {print $1}' <<<"$wrk_out")
  python3 - "$trace" "${n:-0}" "$out" <<'PY'
import sys
trace, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = {}
for line in open(trace):
    f = line.split()
    # % time, seconds, usecs/call, calls, [errors], syscall
    if len(f) >= 5 and f[0][0].isdigit() and not line.lstrip().startswith("100.00"):
        errors = int(f[4]) if len(f) == 6 else 0
        calls[f[-1]] = (int(f[3]), errors)
total = sum(c for c, _ in calls.values())
if n <= 0 or total <= 0:
    sys.exit("bench: syscalls per connection: %d connections, %d syscalls counted: the measure is broken" % (n, total))
with open(out, "w") as o:
    o.write("total %.2f %d\n" % (total / n, n))
    for name, (c, e) in sorted(calls.items(), key=lambda kv: -kv[1][0]):
        o.write("%s %.3f %.3f\n" % (name, c / n, e / n))
PY
  local rc=$?
  rm -f "$trace"
  return $rc
}
