#!/usr/bin/env bash
# Installs the Debian packages weir needs to build, test, demo and benchmark, if any is missing.
set -euo pipefail
packages=(
  pkg-config libnftnl-dev libmnl-dev libnetfilter-conntrack-dev
  nftables iproute2 conntrack iptables procps kmod
  haproxy iperf3 wrk nginx-light systemd
  python3 gcc util-linux linux-perf
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nginx and haproxy are used only inside test namespaces: keep the packaged services off the host.
  for svc in nginx haproxy; do
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    pkill -x "$svc" 2>/dev/null || true
  done
fi
