#!/usr/bin/env bash
# Installs the Debian packages weir needs to build, test, package, demo and benchmark, if any is missing.
# Services that come with them (nginx, haproxy, prometheus, ...) are kept from starting the Debian way: a temporary
# /usr/sbin/policy-rc.d that answers 101 ("action not allowed") while apt runs, removed afterwards even on failure,
# and never replacing one that is already there. No process is ever stopped or killed here.
set -euo pipefail
packages=(
  pkg-config libnftnl-dev libmnl-dev libnetfilter-conntrack-dev
  nftables iproute2 conntrack iptables procps kmod
  haproxy iperf3 wrk nginx-light systemd
  python3 gcc util-linux linux-perf
  # make bench counts syscalls per proxied connection with strace (scripts/bench/syscalls.sh)
  strace
  # the manifest tests read deploy/kubernetes/*.yaml with Debian's python3 (KubernetesManifestTests)
  python3-yaml
  # packaging: make install, make deb (dpkg-shlibdeps, lintian), make image (buildah; podman with runc, since crun
  # refuses hybrid cgroups), the systemd test
  # (systemd-nspawn), binutils (strip), promtool for the metrics checks
  binutils dpkg-dev lintian buildah podman runc systemd-container prometheus
  # the man page, generated from weir --help at make install
  help2man
  # pod mode's tests: the reference CNI plugins (bridge, host-local, loopback) and a busybox for the containers
  containernetworking-plugins busybox-static
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root (or: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
policy=/usr/sbin/policy-rc.d
ours=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# weir install-deps.sh: keep services from starting while apt installs (removed afterwards)\nexit 101\n' \
    > "$policy"
  chmod 0755 "$policy"
  ours=1
fi
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
