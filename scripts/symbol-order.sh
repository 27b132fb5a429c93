#!/usr/bin/env bash
# `make symbol-order`: writes Sources/weir/symbol-order.txt, the order in which the release link (Package.swift) lays
# out the functions `weir proxy` and `weir run` execute, so that the code they touch fills few, contiguous pages.
#
# Why: the binary's code is mapped from the file, and a page fault on it maps the whole 64 KiB window around the page
# (the kernel's fault-around) that is in the page cache. Laid out in link order, the ~550 KiB of functions a proxy
# executes are spread over 2 MB of windows; every one counts in the process's RSS.
#
# How: the release binary (symbols kept, DWARF stripped: valgrind 3.19 cannot read its DWARF 5) runs under
# callgrind in a throwaway network namespace, once as `weir proxy`, once as `weir run`, through the load of
# `make bench`'s memory phase (scripts/bench.sh: 8 iperf3 streams, wrk with `Connection: close`, the 1 KiB
# ping-pong, through a veth to a peer namespace). A dump after the start separates what a start executes from what
# runs after it. A third run is `weir run --pod-mode` in a namespace of its own, serving that same namespace as a pod
# the CNI plugin (the binary, not under callgrind) attached, beside 24 more pods, with an inbound load too (the
# 1 KiB ping-pong from the peer into the pod's application); its start dump is taken after the ADDs. Beside the load,
# the two agents reconcile every second and answer what a node sends them all along (kubelet's probes, Prometheus'
# scrapes, /pods, /config).
#
# The order: what runs after the start (the proxy's load, then what `weir run` and pod mode add), then the starts'
# code, each part hottest first. A process drops the pages its start touched once it serves
# (Memory.releaseStartupPages); what it runs from then on is what stays resident, so that code comes first and
# together: laid out start first, the ~300 KiB a serving agent runs were spread over the ~900 KiB of the list and
# beyond. Functions that the linker cannot move on their own are left out: objects built without function
# sections have all their code in one section (the Swift standard library's core is one of 1.5 MB, libswiftCore.a's
# Swift.o), and naming one of its functions would move all of it into the middle of the list. The link map (-Map)
# says which those are.
#
# The list names functions by their mangled names; lld ignores names it does not find (--no-warn-symbol-ordering),
# so a stale list only loses effect, never breaks the build. Regenerate it when the proxy's code changes much, and
# compare with `make bench`'s memory rows. Needs root (namespaces), valgrind, iperf3, nginx, wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/test-helpers/cni.sh
OUT=${SYMBOL_ORDER_OUT:-Sources/weir/symbol-order.txt}
LOAD_SECS=${SYMBOL_ORDER_LOAD_SECONDS:-4}
THREADS=$(nproc)
for tool in valgrind callgrind_control iperf3 nginx wrk; do
  command -v "$tool" >/dev/null || { echo "symbol-order: $tool is missing" >&2; exit 1; }
done
NS=wtp-order-$$; PEER=wtp-orderpeer-$$; NODE=wtp-ordernode-$$
# The pod-mode profile's 24 more pods: what an agent runs for many pods (their reconciles, listing and sorting them)
MORE=(); for i in $(seq 2 25); do MORE+=("wtp-orderpod$i-$$"); done
WORK=$(mktemp -d /tmp/wtp-order.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$NS" "$PEER" "$NODE" "${MORE[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -n "${SYMBOL_ORDER_KEEP:-}" ]; then # the dumps, the agents' logs and the link map, to look into
    mkdir -p "$SYMBOL_ORDER_KEEP"
    cp "$WORK"/*.start "$WORK"/*.load "$WORK"/*.log "$WORK"/weir.map "$SYMBOL_ORDER_KEEP"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The release binary as `make release` links it, with a link map whose names are not demangled.
make release BUILD_FLAGS="-Xlinker -Map=$WORK/weir.map -Xlinker --no-demangle" >&2
strip --strip-debug -o "$WORK/weir" .build/release/weir
gcc -O2 -o "$WORK/pingpong" scripts/bench/pingpong.c

wait_port() { # port namespace
  local _
  for _ in $(seq 1200); do ip netns exec "$2" ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "symbol-order: nothing listens on port $1" >&2; exit 1
}
readyz() { # namespace of the agent
  ip netns exec "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/15020 && printf "GET /readyz HTTP/1.0\r\n\r\n" >&3 &&
    head -1 <&3' 2>/dev/null | grep -q " 200"
}
cat >"$WORK/nginx.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $WORK/nginx.pid; error_log stderr crit;
events { worker_connections 16384; }
http { access_log off; client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  server { listen 198.18.1.2:8081 backlog=4096; location / { return 200 "ok\n"; } } }
NGINX
ip netns add "$PEER"
ip netns exec "$PEER" ip link set lo up
ip netns exec "$PEER" ip addr add 198.18.1.2/32 dev lo
ip netns exec "$PEER" iperf3 -s -B 198.18.1.2 -p 8080 >/dev/null 2>&1 & pids+=($!)
ip netns exec "$PEER" nginx -c "$WORK/nginx.conf" -e stderr & pids+=($!)
ip netns exec "$PEER" "$WORK/pingpong" server 8082 198.18.1.2 & pids+=($!)
wait_port 8080 "$PEER"; wait_port 8081 "$PEER"; wait_port 8082 "$PEER"

profile() { # name weir-arguments...: callgrind dumps NAME.start (after the start) and NAME.load (the rest)
  local name=$1 p _ pod; shift
  ip netns add "$NS"
  ip netns exec "$NS" ip link set lo up
  ip netns exec "$NS" ip addr add 198.18.0.1/32 dev lo
  ip link add eth0 netns "$NS" type veth peer name pod0 netns "$PEER"
  ip netns exec "$NS" ip addr add 198.18.1.1/24 dev eth0
  ip netns exec "$NS" ip link set eth0 up
  ip netns exec "$PEER" ip link set pod0 up
  ip netns exec "$PEER" ip route replace 198.18.1.1/32 dev pod0
  ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
  if [ "$name" = proxy ]; then # `weir run` installs its own capture
    ip netns exec "$NS" nft -f - <<NFT
table inet wtorder {
  chain output {
    type nat hook output priority -100; policy accept;
    meta skuid != 1337 ip daddr 198.18.1.2 tcp dport { 8080, 8081, 8082 } redirect to :15001
  }
}
NFT
  fi
  # Pod mode: the agent runs in a namespace of its own and serves NS as a pod.
  local home=$NS
  if [ "$name" = pods ]; then
    home=$NODE
    ip netns add "$NODE"
    ip netns exec "$NODE" ip link set lo up
  fi
  ip netns exec "$home" sh -c "ulimit -n 20000; exec valgrind -q --tool=callgrind --dump-instr=no --compress-strings=no \
    --demangle=no --callgrind-out-file=$WORK/$name.%p $WORK/weir $*" > "$WORK/$name.log" 2>&1 &
  p=$!; pids+=("$p")
  if [ "$name" != proxy ]; then
    for _ in $(seq 1200); do readyz "$home" && break; sleep 0.05; done
    readyz "$home" || { echo "symbol-order: weir $name never became ready: $(tail -c 500 "$WORK/$name.log")" >&2; exit 1; }
  fi
  if [ "$name" = pods ]; then # ADD, as a runtime runs the plugin: NS, which the load goes through, and 24 more
    # pods (what a serving agent runs for many pods: sorting them, their reconciles)
    local i=0
    for pod in "$NS" "${MORE[@]}"; do
      i=$((i + 1))
      [ "$pod" = "$NS" ] || { ip netns add "$pod"; ip netns exec "$pod" ip link set lo up; }
      cni_add "$WORK/weir" "$NODE" "$WORK/run/cni.sock" "/run/netns/$pod" "c-order$i" order "p$i" "u$i" \
        >"$WORK/add.out" 2>&1 ||
        { echo "symbol-order: ADD failed: $(cat "$WORK/add.out") $(tail -c 500 "$WORK/$name.log")" >&2; exit 1; }
    done
    # The pod's application, for the inbound load (the agent hands connections over from 127.0.0.6)
    ip netns exec "$NS" "$WORK/pingpong" server 8083 198.18.1.1 & pids+=($!)
    wait_port 8083 "$NS"
  fi
  wait_port 15001 "$NS"
  sleep 1
  callgrind_control -d "$p" >/dev/null 2>&1
  # What a node's agent serves all along beside the data path: kubelet's probes and Prometheus' scrapes, as
  # their clients send them (the pod list and the configuration too); a reconcile every second (below).
  local admin=
  if [ "$name" != proxy ]; then
    ip netns exec "$home" bash -c 'while :; do
      curl -s -o /dev/null -H "User-Agent: kube-probe/1.31" -H "Accept: */*" http://127.0.0.1:15020/readyz
      curl -s -o /dev/null -H "User-Agent: kube-probe/1.31" -H "Accept: */*" http://127.0.0.1:15020/healthz
      curl -s -o /dev/null -H "User-Agent: Prometheus/2.53.0" -H "X-Prometheus-Scrape-Timeout-Seconds: 10" \
        -H "Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1" http://127.0.0.1:15020/metrics
      curl -s -o /dev/null http://127.0.0.1:15020/pods; curl -s -o /dev/null http://127.0.0.1:15020/config
      sleep 0.5; done' >/dev/null 2>&1 &
    admin=$!; pids+=("$admin")
  fi
  ip netns exec "$NS" iperf3 -c 198.18.1.2 -p 8080 -t "$LOAD_SECS" -P 8 >/dev/null
  ip netns exec "$NS" wrk -t1 -c32 -d"${LOAD_SECS}s" -H "Connection: close" http://198.18.1.2:8081/ >/dev/null
  ip netns exec "$NS" "$WORK/pingpong" rr 198.18.1.2 8082 "$LOAD_SECS" >/dev/null
  if [ "$name" = pods ]; then ip netns exec "$PEER" "$WORK/pingpong" rr 198.18.1.1 8083 "$LOAD_SECS" >/dev/null; fi
  if [ -n "$admin" ]; then kill "$admin"; wait "$admin" 2>/dev/null || true; fi
  kill -TERM "$p"; wait "$p" 2>/dev/null || true
  ip netns del "$NS"
  for pod in "$NODE" "${MORE[@]}"; do ip netns del "$pod" 2>/dev/null || true; done
  for _ in $(seq 200); do ip netns exec "$PEER" ip link show pod0 >/dev/null 2>&1 || break; sleep 0.05; done
  # callgrind_control -d writes NAME.PID.1; the exit writes NAME.PID (everything since).
  mv "$WORK/$name.$p.1" "$WORK/$name.start"; mv "$WORK/$name.$p" "$WORK/$name.load"
}
echo "symbol-order: weir proxy under callgrind" >&2
profile proxy proxy --workers "$THREADS" --max-connections 8000
echo "symbol-order: weir run under callgrind" >&2
profile run run -i 198.18.0.0/15 --workers "$THREADS" --max-connections 8000 --reconcile-interval 1s
echo "symbol-order: weir run --pod-mode under callgrind" >&2
profile pods run --pod-mode --run-dir "$WORK/run" --state-dir "$WORK/state" -i 198.18.0.0/15 -b "'*'" \
  --workers "$THREADS" --max-connections 8000 --max-connections-per-pod 1000 --max-connection-rate-per-pod 100000 \
  --reconcile-interval 1s

python3 - "$WORK" "$OUT" <<'PY'
import collections, re, sys
work, out = sys.argv[1], sys.argv[2]

def executed(path):
    """{function: instructions executed in it} of weir's own binary, from one callgrind dump."""
    cost, obj, fn, after_call = collections.Counter(), None, None, False
    for line in open(path):
        if line.startswith("ob="):
            obj = line[3:].strip()
        elif line.startswith("fn="):
            name = re.sub(r"'\d+$", "", line[3:].strip())   # callgrind marks recursion depth as NAME'N
            fn = name if obj and obj.endswith("/weir") and not name.startswith("0x") else None
            if fn:
                cost[fn] += 0
        elif line.startswith("calls="):
            after_call = True   # the next cost line is the call's inclusive cost, not the function's own
        elif line[:1].isdigit() or line[:1] in "+-*":
            if fn and not after_call:
                f = line.split()
                cost[fn] += int(f[1]) if len(f) > 1 else 0
            after_call = False
    return cost

# Input sections of .text in the link map, and the section of each symbol.
section_of, size, in_text, current = {}, {}, False, None
for line in open(work + "/weir.map"):
    m = re.match(r"^\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+( +)(\S.*)$", line.rstrip("\n"))
    if not m:
        continue
    indent, name = len(m.group(2)), m.group(3)
    if indent == 1:
        in_text = name == ".text"
    elif in_text and indent == 9:
        current = name
        size[current] = int(m.group(1), 16)
    elif in_text and indent >= 17 and current:
        section_of.setdefault(name, set()).add(current)
# A function has a section of its own (`.text.NAME`) unless its object was built without function sections: then
# the object's whole code is one `.text`, and naming the function would move all of it (a small one, such as the C
# start files', may move). lld orders every symbol of a name (local symbols of several objects may share one), so a
# name is only listed if none of them is in a large such section.
movable = lambda f: f in section_of and not any(s.endswith(":(.text)") and size[s] > 4096 for s in section_of[f])

# What runs before main, which callgrind calls "(below main)": the C start files' code.
startup = collections.Counter({f: 1 for f in ("_start", "frame_dummy", "register_tm_clones", "deregister_tm_clones",
                                              "__do_global_dtors_aux")})
order, seen = [], set()
for part in ("proxy.load", "run.load", "pods.load", "proxy.start", "run.start", "pods.start"):
    cost = executed(work + "/" + part)
    if part == "proxy.start":   # after every load: the start's code is dropped at ready (Memory.releaseStartupPages)
        cost.update(startup)
    added = [f for f in sorted(cost, key=lambda f: (-cost[f], f)) if f not in seen and movable(f)]
    seen.update(added)
    order += added
    kib = sum(size[s] for s in set().union(*(section_of[f] for f in added))) // 1024
    print("symbol-order: %s: %d functions, %d KiB" % (part, len(added), kib), file=sys.stderr)
with open(out, "w") as o:
    o.write("\n".join(order) + "\n")
print("symbol-order: %d functions in %s" % (len(order), out), file=sys.stderr)
PY
