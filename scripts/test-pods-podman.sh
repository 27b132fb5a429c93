#!/usr/bin/env bash
# Pod mode with a real container runtime: Debian's podman (CNI network backend) runs a few containers from a scratch
# image on a network whose conflist chains the reference `bridge` (host-local IPAM) and `weir`. podman itself runs
# inside a throwaway "node" network namespace (nsenter --net), so the bridge, the containers' veths and the agent
# all live there; the machine's own network is never touched. Checks: each container is attached by the plugin
# (ADD) and served by the one agent, its connections to a server on the node go through the agent (per-pod metrics),
# the agent lists it in /pods while it runs, and removing the container (DEL) leaves nothing of it in the agent.
#
# Usage: scripts/test-pods-podman.sh [WEIR_BIN]   (default .build/dist/weir; make test passes WEIR_BIN)
# Prints ok/FAIL lines and "pods: N passed, N failed, N skipped"; with WEIR_REQUIRE_KERNEL=1 a skip is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$(readlink -f "${1:-${WEIR_BIN:-.build/dist/weir}}")

skipped() {
  if [ "${WEIR_REQUIRE_KERNEL:-}" = 1 ]; then
    echo "FAIL podman pod-mode test: skipped ($1), and WEIR_REQUIRE_KERNEL=1"; echo "pods: 0 passed, 1 failed, 0 skipped"; exit 1
  fi
  echo "skip podman pod-mode test ($1)"; echo "pods: 0 passed, 0 failed, 1 skipped"; exit 0
}
[ "$(id -u)" = 0 ] || skipped "needs root: network namespaces and podman"
for t in podman buildah runc nsenter /usr/lib/cni/bridge /usr/lib/cni/host-local /bin/busybox; do
  command -v "$t" >/dev/null || [ -x "$t" ] || skipped "missing $t (scripts/install-deps.sh installs it)"
done
[ -x "$bin" ] || { echo "FAIL no weir binary at $bin"; echo "pods: 0 passed, 1 failed, 0 skipped"; exit 1; }

passed=0; failed=0
ok() { echo "ok   $1"; passed=$((passed+1)); }
bad() { echo "FAIL $1"; [ -z "${2:-}" ] || echo "$2" | sed 's/^/     /'; failed=$((failed+1)); }

T=$(mktemp -d /tmp/weir-podman.XXXXXX)
node=wtpodman-$$
image=localhost/weir-podtest:$$
store=(--storage-driver vfs)
agent=; server=
names=()
cleanup() {
  for n in "${names[@]}"; do in_node podman "${store[@]}" rm -f -t 0 "$n" >/dev/null 2>&1 || true; done
  [ -z "$agent" ] || { kill "$agent" 2>/dev/null; wait "$agent" 2>/dev/null; }
  [ -z "$server" ] || { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; }
  buildah "${store[@]}" rmi "$image" >/dev/null 2>&1 || true
  ip netns delete "$node" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

# podman through nsenter --net (ip netns exec would remount /sys and hide the cgroup mounts runc needs).
in_node() {
  CONTAINERS_CONF=$T/containers.conf nsenter --net=/run/netns/"$node" "$@"
}
run_podman() {
  in_node podman "${store[@]}" --runtime runc --network-config-dir "$T/net.d" "$@"
}
admin() { ip netns exec "$node" python3 -c "
import urllib.request, sys
print(urllib.request.urlopen('http://127.0.0.1:15020' + sys.argv[1], timeout=3).read().decode(), end='')" "$1"; }

ip netns add "$node" && ip -n "$node" link set lo up

# The image: busybox alone (a shell, nc, ip), from scratch.
mkdir -p "$T/ctx" "$T/plugins" "$T/net.d"
cp /bin/busybox "$T/ctx/busybox"
printf 'FROM scratch\nCOPY busybox /busybox\nENTRYPOINT ["/busybox"]\n' > "$T/ctx/Containerfile"
if buildah "${store[@]}" bud --quiet --layers=false -f "$T/ctx/Containerfile" -t "$image" "$T/ctx" >/dev/null 2>"$T/bud.err"
then ok "scratch image with busybox (buildah)"
else bad "buildah bud" "$(cat "$T/bud.err")"; echo "pods: $passed passed, $((failed)) failed, 0 skipped"; exit 1; fi

# The network: bridge + host-local, then weir, in one chained conflist; podman finds weir in a plugin directory.
cp "$bin" "$T/plugins/weir"
printf '[network]\ncni_plugin_dirs = ["%s", "/usr/lib/cni"]\n' "$T/plugins" > "$T/containers.conf"
cat > "$T/net.d/weirpods.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "weirpods", "plugins": [
  {"type": "bridge", "bridge": "wtpodbr0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$T/leases", "ranges": [[{"subnet": "198.18.66.0/24", "gateway": "198.18.66.1"}]]}},
  {"type": "weir", "agentSocket": "$T/run/cni.sock"}]}
EOF

# The agent and a server on the node.
ip netns exec "$node" python3 Tests/WeirKernelTests/Support/probe.py serve node 80 > "$T/server.log" 2>&1 & server=$!
ip netns exec "$node" "$bin" run --pod-mode --run-dir "$T/run" -i '*' -b '*' --admin-address 127.0.0.1:15020 \
  --reconcile-interval 1s 2> "$T/agent.log" & agent=$!
for _ in $(seq 100); do grep -q 'event=ready' "$T/agent.log" && break; sleep 0.1; done
if grep -q 'event=ready' "$T/agent.log"; then ok "weir run --pod-mode ready in the node namespace"
else bad "agent not ready" "$(cat "$T/agent.log")"; fi

# Three containers: each attached by ADD, each connection carried by the agent.
for i in 1 2 3; do
  n=wtpod$i-$$
  names+=("$n")
  if out=$(run_podman run -d --name "$n" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network weirpods \
      "$image" sleep 60 2>&1); then ok "podman run $n (ADD through bridge and weir)"
  else bad "podman run $n" "$out"; fi
done
pods=$(admin /pods 2>&1)
up=$(grep -c '"state": "up"' <<<"$pods")
if [ "$up" = 3 ]; then ok "the agent serves 3 containers (/pods)"; else bad "/pods shows $up up, expected 3" "$pods"; fi
for i in 1 2 3; do
  n=wtpod$i-$$
  line=$(run_podman exec "$n" /busybox nc 198.18.66.1 80 2>&1 </dev/null)
  if [[ $line == node:80* ]]; then ok "$n reaches the node's server"; else bad "$n: nc said" "$line"; fi
done
metrics=$(admin /metrics 2>&1)
for i in 1 2 3; do
  n=wtpod$i-$$
  if grep -q "weir_pod_connections_accepted_total{direction=\"outbound\",pod=\"$n\"} 1$" <<<"$metrics"
  then ok "$n's connection went through the agent (weir_pod_connections_accepted_total)"
  else bad "$n: no accepted outbound connection in /metrics" "$(grep "pod=\"$n\"" <<<"$metrics")"; fi
done

# Removing a container runs DEL: the agent lets go of it.
run_podman rm -f -t 0 "wtpod1-$$" >/dev/null 2>&1
pods=$(admin /pods 2>&1)
if ! grep -q "wtpod1-$$" <<<"$pods" && [ "$(grep -c '"state": "up"' <<<"$pods")" = 2 ]
then ok "podman rm: DEL detached the container, the others stay served"
else bad "after podman rm, /pods still shows it" "$pods"; fi
if grep -q 'event=pod_attached' "$T/agent.log" && ! grep -q 'event=worker_failed' "$T/agent.log"
then ok "the agent logged every attach and no failure"; else bad "agent log" "$(tail -20 "$T/agent.log")"; fi

echo "pods: $passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
